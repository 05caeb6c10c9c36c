/**
 * Failing nft under the nftables backend (Docker 28.5, iptables-nft, dockfw's
 * own `table inet dockfw`): nft exiting 1 for everything, only its writes
 * (`nft -f -`) failing, nft missing. As in hardening-tools.test.ts: a clear
 * log line, a failure in dockfw_syncs_total, retries with backoff, the table
 * unchanged (no flush), the allowed client through, the other blocked, a new
 * container closed by the catch-all, no crash; the first retry after the fault
 * clears writes. (Hanging tools and the lock: hardening-tools.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, type TestHost } from '../host/index.js';
import { createToolFaults, type ToolFaults, type ToolMode } from '../host/tool-faults.js';
import { DockfwProcess } from './dockfw-process.js';
import {
  ALLOWED,
  expectHeld,
  LATE_ALLOWED,
  metric,
  OTHER,
  ownedNftables,
  reachers,
  waitForRecord,
} from './hardening-support.js';

const WEB_PORT = 8080;
const ERROR = 50;
const SYNC_FAILURES = ['sync failed', 'iptables-restore rejected the rules', 'nft rejected the rules'];

describe('failing nft: the table stays, blocked stays blocked, retried until it works', () => {
  let host: TestHost;
  let faults: ToolFaults;
  let dockfw: DockfwProcess;
  let nextPort = 8090;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft' });
    faults = await createToolFaults();
    await host.runContainer({ name: 'web', ports: [`${WEB_PORT}:80`], labels: { 'dockfw.allow': ALLOWED } });
    dockfw = DockfwProcess.start(host, {
      PATH: faults.binDir,
      DOCKFW_BACKEND: 'nftables',
      DOCKFW_LOG_LEVEL: 'debug',
    });
    await dockfw.waitForLog('rules applied');
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
  });

  afterAll(async () => {
    await DockfwProcess.stopAll().catch(() => undefined);
    await faults?.setMode('ok').catch(() => undefined);
    await faults?.remove().catch(() => undefined);
    await host?.stop();
  });

  it.each<[ToolMode, RegExp]>([
    ['fail', /failed \(exit 1\): .*injected failure/],
    ['fail-restore', /injected failure/],
    ['missing', /not found/],
  ])('nft %s', async (mode, pattern) => {
    const table = await ownedNftables(host);
    const failuresBefore = await metric(host, 'dockfw_syncs_total', 'result="failure"');
    const from = dockfw.records.length;
    // After a successful write dockfw has its next `nft -f -` waiting: it must not dodge the fault.
    expect(await faults.setMode(mode, dockfw.pid)).toBe(1);
    const latePort = nextPort++;
    await host.runContainer({
      name: `late-${mode}`,
      ports: [`${latePort}:80`],
      labels: { 'dockfw.allow': LATE_ALLOWED },
    });
    const failure = (r: { level: number; msg: string }) => r.level >= ERROR && SYNC_FAILURES.includes(r.msg);
    const line = await waitForRecord(dockfw, `a failed sync matching ${pattern}`, failure, from);
    console.log(`nft ${mode}: ${line.msg}: ${String(line.error)}`);
    expect(String(line.error)).toMatch(pattern);
    expect(line.failures).toBe(1);
    // The event sync trusts its last write and only writes; its retry reads the table
    // first, so a fault that fails reads too may be met there as a second kind of failure.
    const retry = await waitForRecord(
      dockfw,
      'a second failed attempt',
      (r) => (r.msg === 'sync failed again' || failure(r)) && r.failures === 2,
      from,
    );
    expect(retry.retryInMs).toBe(2000);
    expect(String(retry.error)).toMatch(pattern);
    await waitForRecord(
      dockfw,
      'a third failed attempt',
      (r) => r.msg === 'sync failed again' && r.failures === 3,
      from,
    );
    await expectHeld(host, dockfw, table, ownedNftables, WEB_PORT, latePort);
    // One line per kind of failure, none per retry: the third attempt on are quiet.
    const lines = dockfw.records.slice(from).filter(failure);
    expect(lines.map((r) => r.failures).filter((n) => (n as number) > 2)).toEqual([]);
    expect(new Set(lines.map((r) => r.error)).size).toBe(lines.length);
    const recovering = dockfw.records.length;
    await faults.setMode('ok', dockfw.pid);
    await waitForRecord(
      dockfw,
      '"sync succeeded again"',
      (r) => r.msg === 'sync succeeded again',
      recovering,
      45_000,
    );
    expect(await reachers(host, latePort, [LATE_ALLOWED, OTHER])).toEqual([LATE_ALLOWED]);
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
    expect(await metric(host, 'dockfw_syncs_total', 'result="failure"')).toBeGreaterThan(failuresBefore);
  });
});
