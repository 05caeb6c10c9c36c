/**
 * Who was dropped, against a real engine, on both backends: a disallowed
 * source probes a restricted port; `dockfw drops` names the container, the
 * port and the source, and `/metrics` counts the drops against the container.
 * The allowed source leaves no record. The baseline shows the port open
 * without dockfw.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, TEST_IMAGE, type TestHost } from '../host/index.js';
import { metric } from './hardening-support.js';
import { DockfwProcess, dockfwCommand } from './dockfw-process.js';

const HOST_A = '203.0.113.1';
const ALLOWED = '203.0.113.11';
const INTRUDER = '198.51.100.10';
const PORT = 8201;

interface DropsJson {
  drops: { container: string | null; on: string | null; port: number; source: string; packets: number }[];
}

describe('dockfw drops and per-container drop metrics (Docker 28.5.2, iptables-nft)', () => {
  let host: TestHost;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft' });
    await host.docker([
      'run',
      '-d',
      '--name',
      'shop',
      '-p',
      `${PORT}:80`,
      '--label',
      `dockfw.allow=${ALLOWED}`,
      TEST_IMAGE,
    ]);
    const deadline = Date.now() + 20_000;
    // Baseline: open to everyone without dockfw.
    while ((await host.probe({ from: INTRUDER, to: HOST_A, port: PORT })) !== 'reached') {
      if (Date.now() > deadline) throw new Error('the container never answered without dockfw');
      await sleep(250);
    }
  });

  afterAll(async () => {
    await DockfwProcess.stopAll();
    await host?.stop();
  });

  for (const backend of ['iptables', 'nftables'] as const) {
    it(`${backend}: the intruder's drops are recorded against the container and port, and counted in /metrics`, async () => {
      const dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: backend });
      await dockfw.waitForLog('connected to docker');
      const deadline = Date.now() + 20_000;
      while ((await host.probe({ from: INTRUDER, to: HOST_A, port: PORT, timeoutMs: 500 })) !== 'blocked') {
        if (Date.now() > deadline) throw new Error('the intruder was never blocked');
      }
      expect(await host.probe({ from: ALLOWED, to: HOST_A, port: PORT })).toBe('reached');
      for (let i = 0; i < 3; i++)
        await host.probe({ from: INTRUDER, to: HOST_A, port: PORT, timeoutMs: 300 });
      const drops = await dockfwCommand(host, ['drops', '--json']);
      expect(drops.exitCode, drops.stderr).toBe(0);
      const report = JSON.parse(drops.stdout) as DropsJson;
      const mine = report.drops.filter((d) => d.source === INTRUDER);
      expect(mine.length, drops.stdout).toBeGreaterThan(0);
      // Dropped on the published binding (before DNAT): host port, this container.
      expect(mine).toContainEqual(expect.objectContaining({ container: 'shop', on: 'host', port: PORT }));
      expect(mine.reduce((sum, d) => sum + d.packets, 0)).toBeGreaterThan(0);
      expect(report.drops.filter((d) => d.source === ALLOWED)).toEqual([]);
      // The text form names them too.
      const text = await dockfwCommand(host, ['drops', 'shop']);
      expect(text.stdout).toContain(INTRUDER);
      expect(await metric(host, 'dockfw_dropped_packets_total', 'container="shop"')).toBeGreaterThan(0);
      await dockfw.stop();
      const removed = await dockfwCommand(host, ['uninstall']);
      expect(removed.exitCode, removed.stderr).toBe(0);
    });
  }
});
