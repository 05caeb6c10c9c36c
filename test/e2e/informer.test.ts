/**
 * The informer on a real engine: with the periodic check and the ruleset watch
 * out of the way, only events drive dockfw, so every sync after the first reads
 * the container cache (inspecting just what the events named). Containers
 * started, renamed, connected to and disconnected from a network, stopped and
 * started again, removed, and started back to back: each time the allowed
 * source answers and no other does, ever (each probe round must be within the
 * allowed set; the test waits until it is exactly that set).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ADDRESSES, startTestHost, TEST_IMAGE, type TestHost } from '../host/index.js';
import { DockfwProcess } from './dockfw-process.js';
import { nftablesFirewall } from './suite-firewall.js';

const HOST_A = '203.0.113.1';
const NEVER = '0 0 1 1 *';

describe('dockfw run follows events through its container cache (Docker 28.5.2, nftables backend)', () => {
  let host: TestHost;
  let dockfw: DockfwProcess | undefined;
  const fw = nftablesFirewall('iptables-nft');

  /** Probes until the sources reaching the port are exactly `allowed`; never more than that. */
  async function settlesTo(port: number, allowed: readonly string[], timeoutMs = 15_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      const reached = await host.reachableFrom({ to: HOST_A, port, timeoutMs: 300 });
      expect(reached.filter((source) => !allowed.includes(source))).toEqual([]);
      if (reached.length === allowed.length) return Date.now() - started;
      if (Date.now() - started > timeoutMs)
        throw new Error(
          `port ${port}: ${reached.join(',')} after ${timeoutMs} ms\n${dockfw?.output() ?? ''}`,
        );
      await sleep(50);
    }
  }

  const owned = async (): Promise<string> => (await fw.owned(host)).v4;
  async function kernelUntil(what: string, check: (text: string) => boolean): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!check(await owned())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${await owned()}`);
      await sleep(50);
    }
  }
  /** The sync's reads of the engine: full (list and inspect all) or only what events named. */
  const reads = () => dockfw?.logged('containers read') ?? [];
  async function eventLogged(action: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!(dockfw?.logged('docker event') ?? []).some((r) => r.action === action)) {
      if (Date.now() > deadline) throw new Error(`no ${action} event logged`);
      await sleep(50);
    }
  }

  beforeAll(async () => {
    host = await startTestHost({
      engine: '28.5',
      iptables: 'nft',
      ipv6: true,
      dockerdArgs: [...fw.dockerdArgs],
    });
    await fw.setUp(host);
    await host.docker(['network', 'create', '--subnet', '172.31.0.0/24', 'joined']);
    dockfw = DockfwProcess.start(host, {
      ...fw.dockfwEnv(),
      DOCKFW_RESYNC: NEVER,
      DOCKFW_RULESET_WATCH: 'off',
      DOCKFW_LOG_LEVEL: 'debug',
    });
    await dockfw.waitForLog('connected to docker');
    await dockfw.waitForLog('rules applied');
  });

  afterAll(async () => {
    await DockfwProcess.stopAll();
    await fw.tearDown();
    await host?.stop();
  });

  it('a started container: its allowed source answers, no other; a rename keeps that', async () => {
    await host.runContainer({ name: 'svc', ports: ['8101:80'], labels: { 'dockfw.allow': '203.0.113.10' } });
    await settlesTo(8101, ['203.0.113.10']);
    await host.docker(['rename', 'svc', 'svc-renamed']);
    await eventLogged('rename');
    await settlesTo(8101, ['203.0.113.10']);
    // One full read at start-up; the event syncs since read only what their events named.
    expect(reads().filter((r) => r.full === true)).toHaveLength(1);
    expect(reads().filter((r) => r.full === false).length).toBeGreaterThan(0);
  });

  it('network connect and disconnect: the new address is judged, then forgotten', async () => {
    await host.docker(['network', 'connect', '--ip', '172.31.0.5', 'joined', 'svc-renamed']);
    await kernelUntil('the joined address', (text) => fw.mentions(text, '172.31.0.5'));
    await settlesTo(8101, ['203.0.113.10']);
    await host.docker(['network', 'disconnect', 'joined', 'svc-renamed']);
    await kernelUntil('the joined address gone', (text) => !fw.mentions(text, '172.31.0.5'));
    await settlesTo(8101, ['203.0.113.10']);
  });

  it('stopped, started again, removed: closed while it is down, allowed again after, rules gone at the end', async () => {
    const [address] = (await host.containerAddresses('svc-renamed')).v4;
    await host.docker(['stop', 'svc-renamed']);
    await kernelUntil('the stopped container forgotten', (text) => !fw.mentions(text, address ?? '?'));
    await host.docker(['start', 'svc-renamed']);
    await settlesTo(8101, ['203.0.113.10']);
    const [again] = (await host.containerAddresses('svc-renamed')).v4;
    await host.docker(['rm', '-f', 'svc-renamed']);
    await kernelUntil('the removed container forgotten', (text) => !fw.mentions(text, again ?? '?'));
    expect(await host.reachableFrom({ to: HOST_A, port: 8101, timeoutMs: 300 })).toEqual([]);
  });

  it('ten labeled containers started back to back: each allowed source answers, no other ever does', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `burst${i}`);
    const allowed = (i: number) => CLIENT_ADDRESSES.v4[i % 3] ?? '203.0.113.10';
    await Promise.all(
      names.map((name, i) =>
        host.docker([
          'run',
          '-d',
          '--name',
          name,
          '-p',
          `${8200 + i}:80`,
          '-l',
          `dockfw.allow=${allowed(i)}`,
          TEST_IMAGE,
        ]),
      ),
    );
    const waited = await Promise.all(names.map((_, i) => settlesTo(8200 + i, [allowed(i)], 30_000)));
    process.stdout.write(`informer e2e: ten back-to-back starts settled after ${waited.join(', ')} ms\n`);
    // Still the one full read of the start-up: every sync since followed events alone.
    expect(reads().filter((r) => r.full === true)).toHaveLength(1);
    expect(dockfw?.logged('cannot read container: left closed')).toEqual([]);
  });
});
