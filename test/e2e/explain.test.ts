/**
 * `dockfw explain` against a real engine and the real kernel, with `dockfw run`
 * keeping the rules: first the iptables backend (Docker 28.5.2, iptables-nft),
 * then DOCKFW_BACKEND=nftables, each under policy allow and then deny. The
 * periodic check is a year away and the ruleset watch is off, so a rule deleted
 * behind dockfw's back stays deleted until explain has been asked.
 */
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, type TestHost } from '../host/index.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';

const HOST_A = '203.0.113.1';
const HOST_V6 = '2001:db8:1::1';
const ALLOWED = '203.0.113.10';
const DENIED = '198.51.100.10';
const SYNC_LOGS = ['rules applied', 'firewall in sync', 'drift found: re-applied the rules'];

interface Answer {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

describe('dockfw explain: Docker 28.5.2, iptables-nft and nftables backends', () => {
  let host: TestHost;
  let dockfw: DockfwProcess | undefined;
  let env: Record<string, string> = {};

  const explain = async (...args: string[]): Promise<Answer> =>
    dockfwCommand(host, ['explain', ...args], env);

  /** (Re)starts `dockfw run` with this backend and policy and waits for its first sync. */
  async function startDockfw(backend: 'iptables' | 'nftables', policy: 'allow' | 'deny'): Promise<void> {
    await dockfw?.stop();
    env = { DOCKFW_BACKEND: backend, DOCKFW_DEFAULT_POLICY: policy };
    const started = DockfwProcess.start(host, {
      ...env,
      DOCKFW_RESYNC: '0 0 1 1 *',
      DOCKFW_RULESET_WATCH: 'off',
      DOCKFW_LISTEN: '',
      DOCKFW_LOG_LEVEL: 'debug',
    });
    dockfw = started;
    const deadline = Date.now() + 30_000;
    while (!started.records.some((r) => SYNC_LOGS.includes(r.msg))) {
      if (Date.now() > deadline) throw new Error(`dockfw did not sync:\n${started.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft', ipv6: true });
    await Promise.all([
      host.runContainer({ name: 'one', ports: ['8081:80'], labels: { 'dockfw.allow': ALLOWED } }),
      host.runContainer({ name: 'open', ports: ['8088:80'] }),
      host.runContainer({
        name: 'invalid',
        ports: ['8090:80'],
        labels: { 'dockfw.allow': '203.0.113.0/33' },
      }),
    ]);
  });

  afterAll(async () => {
    await DockfwProcess.stopAll();
    await host?.stop();
  });

  for (const backend of ['iptables', 'nftables'] as const) {
    describe(`${backend} backend`, () => {
      it('policy allow: an allowed source, a denied one, an unlabeled container, an invalid label, no such target', async () => {
        await startDockfw(backend, 'allow');

        const allowed = await explain(ALLOWED, `${HOST_A}:8081`);
        expect(allowed.exitCode, allowed.stdout + allowed.stderr).toBe(0);
        expect(allowed.stdout).toContain(`${ALLOWED} → ${HOST_A}:8081/tcp: allowed`);
        expect(allowed.stdout).toMatch(/path: IPv4 DNAT 0\.0\.0\.0:8081 → 172\.\d+\.\d+\.\d+:80\/tcp/);
        expect(allowed.stdout).toContain('decided by: dockfw.allow');
        expect(allowed.stdout).toContain('kernel: holds the rule');
        expect(allowed.stdout).not.toContain('kernel: missing');

        const denied = await explain(DENIED, `${HOST_A}:8081`);
        expect(denied.exitCode, denied.stdout + denied.stderr).toBe(1);
        expect(denied.stdout).toContain(': denied');
        expect(denied.stdout).toContain('kernel: holds the rule');
        expect(denied.stdout).not.toContain('kernel: missing');

        // The kernel agrees with both answers.
        expect(await host.reachableFrom({ to: HOST_A, port: 8081 }, [ALLOWED, DENIED])).toEqual([ALLOWED]);

        const open = await explain(DENIED, 'open:80');
        expect(open.exitCode, open.stdout).toBe(0);
        expect(open.stdout).toContain('decided by: default policy (allow)');
        expect(open.stdout).toContain('kernel: holds the rule');
        expect(open.stdout).not.toContain('kernel: missing');

        const invalid = await explain(ALLOWED, `${HOST_A}:8090`);
        expect(invalid.exitCode, invalid.stdout).toBe(1);
        expect(invalid.stdout).toContain('decided by: invalid label');
        expect(invalid.stdout).toContain('invalid: dockfw.allow: "203.0.113.0/33"');
        expect(invalid.stdout).toContain('kernel: holds the rule');

        const none = await explain(ALLOWED, `${HOST_A}:9999`);
        expect(none.exitCode, none.stdout).toBe(3);
        expect(none.stdout).toContain('no running container publishes 203.0.113.1:9999/tcp');
        expect((await explain(ALLOWED, 'nosuch:80')).exitCode).toBe(3);
        expect((await explain(ALLOWED, 'one:8081')).exitCode).toBe(3);

        // IPv6 to the IPv4-only container: docker-proxy, and an IPv4-only label lets no IPv6 client in.
        const v6 = await explain('2001:db8:1::10', `[${HOST_V6}]:8081`, '--json');
        expect(v6.exitCode, v6.stdout).toBe(1);
        const json = JSON.parse(v6.stdout) as {
          verdict: string;
          kernel: { backend: string; status: string };
          paths: { kind: string }[];
        };
        expect(json.verdict).toBe('denied');
        expect(json.paths.map((p) => p.kind)).toEqual(['docker-proxy']);
        expect(json.kernel).toEqual({ backend, status: 'holds' });
      });

      it('says kernel: missing once the rule is deleted behind its back', async () => {
        if (backend === 'iptables') {
          // The verdict is an element of the binding's admit set: deleting it is the damage.
          const deleted = await host.exec('ipset', ['del', 'dockfw-boundany4', `${ALLOWED},tcp:8081`]);
          expect(deleted.exitCode, deleted.stderr).toBe(0);
        } else {
          await host.nft([
            'delete',
            'element',
            'inet',
            'dockfw',
            'boundallowed4',
            `{ 8081 . tcp . 0.0.0.0/0 . ${ALLOWED} }`,
          ]);
        }
        // The damage is real: the allowed source is no longer answered (closed, never widened).
        expect(await host.reachableFrom({ to: HOST_A, port: 8081 }, [ALLOWED, DENIED])).toEqual([]);
        const after = await explain(ALLOWED, `${HOST_A}:8081`);
        // The verdict is dockfw's; the kernel line says it is not enforced as decided.
        expect(after.exitCode, after.stdout).toBe(0);
        expect(after.stdout).toContain('kernel: missing');
        expect(after.stdout).toMatch(
          backend === 'iptables'
            ? /missing: dockfw-boundany4: 203\.0\.113\.10,tcp:8081/
            : /missing: boundallowed4: 8081 \. tcp \. 0\.0\.0\.0\/0 \. 203\.0\.113\.10/,
        );
        const json = JSON.parse((await explain(ALLOWED, `${HOST_A}:8081`, '--json')).stdout) as {
          kernel: { status: string };
        };
        expect(json.kernel.status).toBe('missing');
      });

      it('policy deny: the unlabeled container is denied by the default policy', async () => {
        await startDockfw(backend, 'deny');
        const open = await explain(DENIED, `${HOST_A}:8088`);
        expect(open.exitCode, open.stdout).toBe(1);
        expect(open.stdout).toContain('decided by: default policy (deny)');
        expect(open.stdout).toContain('kernel: holds the rule');
        expect(open.stdout).not.toContain('kernel: missing');
        // The restart repaired what was deleted.
        const allowed = await explain(ALLOWED, `${HOST_A}:8081`);
        expect(allowed.exitCode).toBe(0);
        expect(allowed.stdout).not.toContain('kernel: missing');
      });
    });
  }

  it('offline with --input: answers from docker inspect and does not check the kernel', async () => {
    const inspect = await host.docker(['inspect', 'one', 'open']);
    const file = `${host.layout.dir}/inspect.json`;
    await writeFile(file, inspect.stdout);
    const answer = await explain(DENIED, 'open:80', '--input', file, '--default-policy', 'allow');
    expect(answer.exitCode, answer.stdout + answer.stderr).toBe(0);
    expect(answer.stdout).toContain('kernel: not checked (offline)');
  });
});
