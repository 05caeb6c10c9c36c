// Switching backends on a real engine (Docker 28.5.2, iptables-nft): the new
// backend writes its rules first, then removes the other one's, so a port is
// never open in between; `auto` on an engine that says "iptables" goes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, type TestHost } from '../host/index.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';

const HOST_A = '203.0.113.1';

describe('switching between the iptables and nftables backends', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft', ipv6: true });
    await host.runContainer({ name: 'web', ports: ['8080:80'], labels: { 'dockfw.allow': '203.0.113.10' } });
  });

  afterAll(async () => {
    await DockfwProcess.stopAll();
    await host?.stop();
  });

  const iptablesOwned = async () => (await host.iptablesSave(4, 'filter')).includes('DOCKFW');
  const nftOwned = async () => (await host.nft(['list', 'tables'])).includes('table inet dockfw');

  /** Runs dockfw with `backend` until the other backend's rules are gone, while a disallowed client keeps probing. */
  async function switchTo(backend: 'iptables' | 'nftables' | 'auto', other: () => Promise<boolean>) {
    let stop = false;
    let answered = 0;
    const prober = (async () => {
      while (!stop) {
        if (
          (await host.probe({ from: '203.0.113.11', to: HOST_A, port: 8080, timeoutMs: 250 })) === 'reached'
        )
          answered++;
      }
    })();
    const dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: backend, DOCKFW_LOG_LEVEL: 'debug' });
    try {
      const chosen = await dockfw.waitForLog('firewall backend chosen');
      await expect.poll(other, { timeout: 15_000, interval: 100 }).toBe(false);
      return { chosen: chosen.backend, dockfw };
    } finally {
      stop = true;
      await prober;
      expect(answered).toBe(0);
      await dockfw.stop();
    }
  }

  it('iptables → nftables → auto (iptables here) → uninstall, never open to a disallowed client', async () => {
    let dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: 'iptables' });
    await expect.poll(iptablesOwned, { timeout: 15_000, interval: 100 }).toBe(true);
    await dockfw.stop();
    expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.10']);

    const toNft = await switchTo('nftables', iptablesOwned);
    expect(toNft.chosen).toBe('nftables');
    expect(toNft.dockfw.logged("removed the other backend's rules")).toMatchObject([{ backend: 'iptables' }]);
    expect(await nftOwned()).toBe(true);
    expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.10']);

    const back = await switchTo('auto', nftOwned);
    expect(back.chosen).toBe('iptables');
    expect(await iptablesOwned()).toBe(true);
    expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.10']);

    dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: 'nftables' });
    await expect.poll(iptablesOwned, { timeout: 15_000, interval: 100 }).toBe(false);
    await dockfw.stop();
    const result = await dockfwCommand(host, ['uninstall']);
    expect(result.stdout).toContain('removed nftables table inet dockfw');
    expect([await iptablesOwned(), await nftOwned()]).toEqual([false, false]);
    expect((await host.reachableFrom({ to: HOST_A, port: 8080 })).length).toBeGreaterThan(1);
  });
});
