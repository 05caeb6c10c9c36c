/**
 * dockfw's HTTP side and `dockfw status` / `dockfw health` against a running
 * daemon (built dist/) on a real engine, with real packets for the drop counters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, type TestHost } from '../host/index.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';

const HOST_A = '203.0.113.1';
const LISTEN = '127.0.0.1:9811';
/** A second daemon that cannot reach Docker: it must never become ready. */
const BROKEN_LISTEN = '127.0.0.1:9812';

interface Answer {
  status: number;
  body: string;
}

interface StatusJson {
  ready: boolean;
  notReady: string[];
  lastSync: { ok: boolean } | null;
  containers: {
    id: string;
    name: string;
    state: string;
    addresses: string[];
    ports: { port: number; protocol: string; allow: string; origin: string }[];
  }[];
}

describe('observability of a running daemon (Docker 28.5.2, iptables-nft)', () => {
  let host: TestHost;
  let dockfw: DockfwProcess | undefined;
  let broken: DockfwProcess | undefined;

  /** GET from inside the engine's namespace, where the daemon listens. */
  async function get(path: string, listen = LISTEN): Promise<Answer> {
    const result = await host.exec('curl', [
      '-s',
      '-m',
      '5',
      '-w',
      '\n%{http_code}',
      `http://${listen}${path}`,
    ]);
    const lines = result.stdout.split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  }

  async function metric(name: string): Promise<number | undefined> {
    const text = (await get('/metrics')).body;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  }

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft' });
    await Promise.all([
      host.runContainer({ name: 'obs-web', ports: ['8081:80'], labels: { 'dockfw.allow': '203.0.113.10' } }),
      host.runContainer({ name: 'obs-open', ports: ['8082:80'] }),
      host.runContainer({ name: 'obs-bad', ports: ['8083:80'], labels: { 'dockfw.allow.80': 'nobody' } }),
      host.runContainer({ name: 'obs-quiet' }),
    ]);
    dockfw = DockfwProcess.start(host, { DOCKFW_LISTEN: LISTEN, DOCKFW_RESYNC: '*/2 * * * * *' });
    broken = DockfwProcess.start(host, {
      DOCKFW_LISTEN: BROKEN_LISTEN,
      DOCKER_HOST: `unix://${host.layout.dir}/no-such.sock`,
    });
    await dockfw.waitForLog('rules applied');
    await broken.waitForLog('serving /healthz, /readyz, /metrics, /status');
  });

  afterAll(async () => {
    await broken?.stop().catch(() => undefined);
    await dockfw?.stop().catch(() => undefined);
    await host?.stop();
  });

  it('answers /healthz, and /readyz 200 once synced', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
    await expect.poll(async () => (await get('/readyz')).status, { timeout: 10_000 }).toBe(200);
    expect(JSON.parse((await get('/readyz')).body)).toEqual({ ready: true, reasons: [] });
  });

  it('a daemon that cannot reach Docker is alive but not ready, and status exits 1', async () => {
    expect((await get('/healthz', BROKEN_LISTEN)).status).toBe(200);
    const ready = await get('/readyz', BROKEN_LISTEN);
    expect(ready.status).toBe(503);
    // Whether the first sync attempt has already failed depends on timing; both say why.
    const body = JSON.parse(ready.body) as { ready: boolean; reasons: string[] };
    expect(body.ready).toBe(false);
    expect(body.reasons[0]).toBe('docker event stream not connected');
    expect(body.reasons.slice(1)).toEqual([
      expect.stringMatching(/^(first sync not done yet|last sync failed: docker: .*no-such\.sock)$/),
    ]);
    const status = await dockfwCommand(host, ['status', `--listen=${BROKEN_LISTEN}`]);
    expect(status.exitCode).toBe(1);
    expect(status.stdout).toContain('NOT READY');
    const health = await dockfwCommand(host, ['health', `--listen=${BROKEN_LISTEN}`]);
    expect(health.exitCode).toBe(0);
  });

  it('dockfw status --json lists exactly the containers with published ports, as Docker sees them', async () => {
    const result = await dockfwCommand(host, ['status', '--json'], { DOCKFW_LISTEN: LISTEN });
    expect(result.exitCode, result.stderr).toBe(0);
    const status = JSON.parse(result.stdout) as StatusJson;
    expect(status.ready).toBe(true);
    const byName = new Map(status.containers.map((c) => [c.name, c]));
    expect([...byName.keys()]).toEqual(['obs-bad', 'obs-open', 'obs-web']);
    for (const name of byName.keys()) {
      const { stdout: id } = await host.docker(['inspect', '--format', '{{.Id}}', name]);
      expect(byName.get(name)?.id).toBe(id.trim());
      expect(byName.get(name)?.addresses).toEqual((await host.containerAddresses(name)).v4);
    }
    expect(byName.get('obs-web')).toMatchObject({
      state: 'enforced',
      ports: [{ port: 80, protocol: 'tcp', allow: '203.0.113.10', origin: 'label' }],
    });
    expect(byName.get('obs-open')).toMatchObject({ state: 'default-allow', ports: [{ allow: 'any' }] });
    expect(byName.get('obs-bad')).toMatchObject({
      state: 'closed-invalid-label',
      ports: [{ allow: 'none' }],
    });
  });

  it('dockfw status prints the same as a table and exits 0; nothing listening exits 2', async () => {
    const result = await dockfwCommand(host, ['status'], { DOCKFW_LISTEN: LISTEN });
    expect(result.exitCode, result.stderr).toBe(0);
    const [web] = (await host.containerAddresses('obs-web')).v4;
    expect(result.stdout).toMatch(/^dockfw \S+: ready; last sync ok at /);
    expect(result.stdout).toMatch(
      new RegExp(
        `^obs-web +enforced +${web?.replaceAll('.', '\\.')} +80/tcp +dockfw\\.allow +203\\.0\\.113\\.10$`,
        'm',
      ),
    );
    expect(result.stdout).toMatch(/^obs-bad +closed-invalid-label .* none$/m);
    expect(result.stdout).toMatch(/^obs-open +default-allow .* any$/m);
    const nobody = await dockfwCommand(host, ['status', '--listen=127.0.0.1:9899']);
    expect(nobody.exitCode).toBe(2);
    expect((await dockfwCommand(host, ['health', '--listen=127.0.0.1:9899'])).exitCode).toBe(1);
  });

  it('/metrics: managed containers and rules, sync results, a drop counter that rises with a blocked probe', async () => {
    expect(await metric('dockfw_managed_containers')).toBe(3);
    expect(await metric('dockfw_managed_rules{family="ipv4"}')).toBeGreaterThan(0);
    expect(await metric('dockfw_syncs_total{result="success"}')).toBeGreaterThanOrEqual(1);
    expect(await metric('dockfw_syncs_total{result="failure"}')).toBe(0);
    const last = (await metric('dockfw_last_successful_sync_timestamp_seconds')) ?? 0;
    expect(Math.abs(Date.now() / 1000 - last)).toBeLessThan(60);

    const dropped = async () => (await metric('dockfw_dropped_packets_total{container="obs-web"}')) ?? 0;
    const before = await dropped();
    expect(await host.probe({ from: '203.0.113.10', to: HOST_A, port: 8081 })).toBe('reached');
    expect(await dropped()).toBe(before);
    expect(await host.probe({ from: '203.0.113.11', to: HOST_A, port: 8081, timeoutMs: 500 })).toBe(
      'blocked',
    );
    expect(await dropped()).toBeGreaterThan(before);
    expect(await metric('dockfw_dropped_bytes_total{container="obs-web"}')).toBeGreaterThan(0);
  });

  it('counts a drift repair and keeps the drop counters monotonic across the rewrite', async () => {
    const dropped = async () => (await metric('dockfw_dropped_packets_total{container="obs-web"}')) ?? 0;
    expect(await host.probe({ from: '203.0.113.12', to: HOST_A, port: 8081, timeoutMs: 500 })).toBe(
      'blocked',
    );
    const before = await dropped();
    expect(before).toBeGreaterThan(0);
    await host.flushChain('DOCKFW-IN', [4]);
    await dockfw?.waitForLog('drift found: re-applied the rules', 10_000);
    expect(await metric('dockfw_drift_repairs_total{family="ipv4"}')).toBe(1);
    expect(await dropped()).toBeGreaterThanOrEqual(before);
    expect((await get('/readyz')).status).toBe(200);
  });
});
