/**
 * The paths that are not Docker's DNAT, each first shown open without dockfw:
 * - containers on the host network (a reverse proxy, the common case): their
 *   sockets are the host's, reached through INPUT, never FORWARD. The ports
 *   their `dockfw.allow.<port>` labels name are judged, both families, on both
 *   backends; every other port of the host is left alone;
 * - a network in `routed` gateway mode: no DNAT, the container address is
 *   routed to directly; judged on the container address and port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ADDRESSES, startTestHost, TEST_IMAGE, type TestHost } from '../host/index.js';
import { stopDockerd } from '../host/engine.js';
import { readPidFile } from '../host/processes.js';
import { run } from '../host/run.js';
import { DOCKFW_MAIN } from './dockfw-process.js';
import { DockfwProcess, dockfwCommand } from './dockfw-process.js';

const HOST_A = '203.0.113.1';
const HOST_V6 = '2001:db8:1::1';
const ALL_V4 = [...CLIENT_ADDRESSES.v4];
const ALL_V6 = [...CLIENT_ADDRESSES.v6];
const ROUTED_SUBNET = '172.31.0.0/24';
const ROUTED_WEB = '172.31.0.5';

describe('host-network containers and routed networks (Docker 28.5.2, iptables-nft)', () => {
  let host: TestHost;

  async function eventually(
    what: string,
    read: () => Promise<string[]>,
    want: readonly string[],
    timeoutMs = 20_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: string[] = [];
    while (Date.now() < deadline) {
      last = await read();
      if (JSON.stringify(last) === JSON.stringify(want)) return;
      await sleep(250);
    }
    expect(last, what).toEqual(want);
  }

  const reach =
    (port: number, to = HOST_A) =>
    () =>
      host.reachableFrom({ to, port });

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft', ipv6: true });
    await host.docker([
      'run',
      '-d',
      '--name',
      'proxy',
      '--network',
      'host',
      '-e',
      'SERVE_TCP=8443 8444 9443',
      '--label',
      'dockfw.allow.8443=203.0.113.11, 2001:db8:1::11',
      TEST_IMAGE,
    ]);
    // Baseline: every port of the host-network container answers everyone.
    await eventually('8443 open without dockfw', reach(8443), ALL_V4);
    await eventually('8443 open over IPv6 without dockfw', reach(8443, HOST_V6), ALL_V6);
    await eventually('8444 open without dockfw', reach(8444), ALL_V4);
    // A routed network: the outside client routes its subnet through the host.
    await host.docker([
      'network',
      'create',
      '-o',
      'com.docker.network.bridge.gateway_mode_ipv4=routed',
      '--subnet',
      ROUTED_SUBNET,
      'routed',
    ]);
    await host.docker([
      'run',
      '-d',
      '--name',
      'routed-web',
      '--network',
      'routed',
      '--ip',
      ROUTED_WEB,
      '-p',
      '8095:80',
      '--label',
      'dockfw.allow=203.0.113.12',
      TEST_IMAGE,
    ]);
    await run('ip', ['netns', 'exec', host.clientNs, 'ip', 'route', 'add', ROUTED_SUBNET, 'via', HOST_A]);
    await eventually('the routed container open without dockfw', reach(80, ROUTED_WEB), ALL_V4);
  });

  afterAll(async () => {
    await DockfwProcess.stopAll();
    await host?.stop();
  });

  for (const backend of ['iptables', 'nftables'] as const) {
    it(`${backend}: the labeled port answers its sources only, both families; the host's other ports are untouched`, async () => {
      const dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: backend, DOCKFW_LOG_LEVEL: 'debug' });
      await dockfw.waitForLog('connected to docker');
      await eventually('8443 over IPv4', reach(8443), ['203.0.113.11']);
      await eventually('8443 over IPv6', reach(8443, HOST_V6), ['2001:db8:1::11']);
      expect(await host.reachableFrom({ to: HOST_A, port: 8444 })).toEqual(ALL_V4);
      expect(await host.reachableFrom({ to: HOST_V6, port: 8444 })).toEqual(ALL_V6);
      // The host itself still reaches its own service.
      expect(await host.probeFromEngine({ to: HOST_A, port: 8443 })).toBe('reached');
      // Routed (no DNAT): judged on the container address and port.
      await eventually('the routed container', reach(80, ROUTED_WEB), ['203.0.113.12']);
      await dockfw.stop();
      const removed = await dockfwCommand(host, ['uninstall']);
      expect(removed.exitCode, removed.stderr).toBe(0);
      await eventually('8443 open again after uninstall', reach(8443), ALL_V4);
      await eventually('the routed container open again after uninstall', reach(80, ROUTED_WEB), ALL_V4);
    });
  }

  it('dockfw.allow without a port on the host network is an error: the ports it names are closed, and it says why', async () => {
    await host.docker([
      'run',
      '-d',
      '--name',
      'badproxy',
      '--network',
      'host',
      '-e',
      'SERVE_TCP=9444',
      '--label',
      'dockfw.allow=any',
      '--label',
      'dockfw.allow.9444=any',
      TEST_IMAGE,
    ]);
    await eventually('9444 open without dockfw', reach(9444), ALL_V4);
    const dockfw = DockfwProcess.start(host, { DOCKFW_LOG_LEVEL: 'debug' });
    await dockfw.waitForLog('connected to docker');
    await eventually('9444 closed', reach(9444), []);
    const check = dockfw.records.find(
      (r) =>
        typeof r.msg === 'string' &&
        JSON.stringify(r).includes('a container on the host network publishes nothing'),
    );
    expect(check, 'a log line naming the label').toBeDefined();
    expect(JSON.stringify(check)).toContain('badproxy');
    expect(await host.reachableFrom({ to: HOST_A, port: 8443 })).toEqual(['203.0.113.11']);
    await dockfw.stop();
  });

  it('a host-network label asking for more (port, source block) pairs than the cap closes its ports and names the label', async () => {
    // 25,536 ports × (63 blocks of the IPv6 range + the IPv4 source + the port): past 1,048,576.
    await host.docker([
      'run',
      '-d',
      '--name',
      'wideproxy',
      '--network',
      'host',
      '-e',
      'SERVE_TCP=40001',
      '--label',
      'dockfw.allow.40000-65535/tcp=203.0.113.11, 2001:db8::1-2001:db8::ffff:fffe',
      TEST_IMAGE,
    ]);
    try {
      await eventually('40001 open without dockfw', reach(40001), ALL_V4);
      const dockfw = DockfwProcess.start(host, { DOCKFW_LOG_LEVEL: 'debug' });
      await dockfw.waitForLog('connected to docker');
      // Closed to everyone, the source its label lists too.
      await eventually('40001 closed', reach(40001), []);
      const said = dockfw.records.find((r) => JSON.stringify(r).includes('(port, source block) pairs'));
      expect(said, 'a log line naming the label').toBeDefined();
      expect(JSON.stringify(said)).toContain('wideproxy');
      expect(JSON.stringify(said)).toContain('dockfw.allow.40000-65535/tcp');
      // The other host-network container keeps its own verdict.
      expect(await host.reachableFrom({ to: HOST_A, port: 8443 })).toEqual(['203.0.113.11']);
      await dockfw.stop();
    } finally {
      await host.docker(['rm', '-f', 'wideproxy']);
    }
  });

  it('boot guard: a network with a custom bridge name is closed until the first sync (open without the guard)', async () => {
    await host.docker(['network', 'create', '-o', 'com.docker.network.bridge.name=lan7', 'custombr']);
    await host.docker([
      'run',
      '-d',
      '--restart',
      'always',
      '--name',
      'custom',
      '--network',
      'custombr',
      '-p',
      '8096:80',
      '--label',
      'dockfw.allow=203.0.113.13',
      TEST_IMAGE,
    ]);
    const hasDnat = async () => (await host.iptablesSave(4, 'nat')).includes('--dport 8096 ');
    /** A reboot: the engine stopped, every rule gone, maybe the guard, the engine (and its containers) back. */
    const reboot = async (guard: boolean): Promise<void> => {
      await DockfwProcess.stopAll();
      await stopDockerd(host.layout, readPidFile(host.layout.dockerPidFile));
      await host.nft(['flush', 'ruleset']);
      if (guard) {
        const installed = await host.exec('env', [
          `PATH=${host.env.PATH ?? ''}`,
          process.execPath,
          DOCKFW_MAIN,
          'guard',
        ]);
        expect(installed.exitCode, installed.stderr).toBe(0);
      }
      await host.restartEngine();
      const deadline = Date.now() + 30_000;
      while (!(await hasDnat())) {
        if (Date.now() > deadline) throw new Error('the restored container has no DNAT');
        await sleep(100);
      }
    };
    // Baseline: after a reboot without the guard, the restored container answers everyone.
    await reboot(false);
    await eventually('8096 open after a reboot without the guard', reach(8096), ALL_V4);
    // With the guard: closed for everyone (allowed source included) until dockfw's first sync.
    await reboot(true);
    await sleep(1000);
    expect(await host.reachableFrom({ to: HOST_A, port: 8096 })).toEqual([]);
    const dockfw = DockfwProcess.start(host, {});
    await dockfw.waitForLog('connected to docker');
    await eventually('8096 after the first sync', reach(8096), ['203.0.113.13']);
  });
});
