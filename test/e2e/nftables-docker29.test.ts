// Docker 29's nftables layout on a real engine (fixture, see test/host/docker29-fixture.ts),
// with /info saying "nftables" through a proxy: a published port is open without
// dockfw; with dockfw on `auto` it picks nftables, writes only its own table, and
// restricts the port to the labeled source; unlabeled ports close under deny;
// uninstall opens them again.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKER29_DOCKERD_ARGS, Docker29Firewall } from '../host/docker29-fixture.js';
import { CLIENT_ADDRESSES, startTestHost, type TestHost } from '../host/index.js';
import { startInfoProxy, type InfoProxy } from '../host/info-proxy.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';

const HOST_A = '203.0.113.1';
const ALL_V4 = [...CLIENT_ADDRESSES.v4];

describe('dockfw on the Docker 29 nftables layout', () => {
  let host: TestHost;
  let fixture: Docker29Firewall | undefined;
  let proxy: InfoProxy | undefined;
  let dockfw: DockfwProcess | undefined;

  beforeAll(async () => {
    host = await startTestHost({
      engine: '28.5',
      iptables: 'nft',
      ipv6: true,
      dockerdArgs: DOCKER29_DOCKERD_ARGS,
    });
    fixture = new Docker29Firewall(host);
    await fixture.start();
    proxy = await startInfoProxy(host.socket, path.join(host.layout.dir, 'info.sock'));
    await Promise.all([
      host.runContainer({ name: 'web', ports: ['8080:80'], labels: { 'dockfw.allow': '203.0.113.10' } }),
      host.runContainer({ name: 'plain', ports: ['8081:80'] }),
    ]);
    await fixture.settled();
  });

  afterAll(async () => {
    await dockfw?.stop().catch(() => undefined);
    fixture?.stop();
    await proxy?.close();
    await host?.stop();
  });

  const tables = async () => (await host.nft(['list', 'tables'])).split('\n').filter((l) => l !== '');
  const dockerTables = async () =>
    Promise.all([
      host.nft(['list', 'table', 'ip', 'docker-bridges']),
      host.nft(['list', 'table', 'ip6', 'docker-bridges']),
    ]);

  it('without dockfw: only nftables rules, and the published ports are open to everyone', async () => {
    expect(await tables()).toEqual(['table ip docker-bridges', 'table ip6 docker-bridges']);
    expect(await host.iptablesSave(4)).not.toMatch(/DOCKER/);
    const [web, plain] = await Promise.all([
      host.reachableFrom({ to: HOST_A, port: 8080 }),
      host.reachableFrom({ to: HOST_A, port: 8081 }),
    ]);
    expect(web).toEqual(ALL_V4);
    expect(plain).toEqual(ALL_V4);
  });

  it('auto picks nftables from /info, writes only table inet dockfw, and enforces the labels', async () => {
    const before = await dockerTables();
    dockfw = DockfwProcess.start(host, {
      DOCKER_HOST: proxy?.dockerHost ?? '',
      DOCKFW_DEFAULT_POLICY: 'deny',
      DOCKFW_RESYNC: '*/2 * * * * *',
      DOCKFW_LOG_LEVEL: 'debug',
    });
    const chosen = await dockfw.waitForLog('firewall backend chosen');
    expect(chosen).toMatchObject({ backend: 'nftables', setting: 'auto', dockerFirewall: 'nftables' });
    await expect
      .poll(() => host.reachableFrom({ to: HOST_A, port: 8080 }), { timeout: 15_000, interval: 200 })
      .toEqual(['203.0.113.10']);
    expect(await host.reachableFrom({ to: HOST_A, port: 8081 })).toEqual([]);
    expect(await tables()).toEqual([
      'table ip docker-bridges',
      'table ip6 docker-bridges',
      'table inet dockfw',
    ]);
    expect(await host.iptablesSave(4)).not.toMatch(/DOCKFW|DOCKER/);
    // Docker's tables are exactly as before (counters aside).
    const strip = (t: string) => t.replace(/counter packets \d+ bytes \d+/g, 'counter');
    expect((await dockerTables()).map(strip)).toEqual(before.map(strip));
  });

  it('follows a new container and its removal; a flushed set is repaired and logged as drift', async () => {
    await host.runContainer({
      name: 'late',
      ports: ['8082:80'],
      labels: { 'dockfw.allow': '198.51.100.0/24' },
    });
    await fixture?.settled();
    await expect
      .poll(() => host.reachableFrom({ to: HOST_A, port: 8082 }), { timeout: 15_000, interval: 200 })
      .toEqual(['198.51.100.10', '198.51.100.11']);
    const [late] = (await host.containerAddresses('late')).v4;
    const guarded = () => host.nft(['list', 'set', 'inet', 'dockfw', 'guarded4']);
    expect(await guarded()).toContain(`${late} . tcp . 80`);
    await host.docker(['rm', '-f', 'late']);
    await expect.poll(guarded, { timeout: 10_000, interval: 100 }).not.toContain(`${late} . tcp . 80`);

    await host.nft(['flush', 'set', 'inet', 'dockfw', 'allowed4']);
    const drift = await dockfw?.waitForLog('drift found: re-applied the rules', 10_000);
    expect(drift).toMatchObject({ family: 'ipv4' });
    expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.10']);
  });

  it('uninstall removes only its table and Docker 29 forwarding is back to open', async () => {
    await dockfw?.stop();
    const result = await dockfwCommand(host, ['uninstall']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('removed nftables table inet dockfw');
    expect(await tables()).toEqual(['table ip docker-bridges', 'table ip6 docker-bridges']);
    expect(await host.reachableFrom({ to: HOST_A, port: 8081 })).toEqual(ALL_V4);
  });
});
