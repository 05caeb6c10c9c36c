/**
 * What the hardening tests check after every fault: dockfw's rules are exactly
 * as they were, blocked traffic stays blocked, allowed traffic still passes, the
 * process is alive; and how they read its log lines and metrics.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import type { TestHost } from '../host/index.js';
import type { DockfwProcess, LogRecord } from './dockfw-process.js';

export const HOST_V4 = '203.0.113.1';
export const ALLOWED = '203.0.113.11';
export const OTHER = '203.0.113.10';
export const LATE_ALLOWED = '203.0.113.12';

/** The process runs (nsenter execs node, so the pid is dockfw's own). */
export function isAlive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** dockfw's rules (chains and jumps) in both families, as iptables-save prints them. */
export async function ownedIptables(host: TestHost): Promise<string[]> {
  const lines: string[] = [];
  for (const family of [4, 6] as const) {
    const save = await host.iptablesSave(family, 'filter');
    lines.push(
      ...save
        .split('\n')
        .filter((l) => /^(?::DOCKFW|-A DOCKFW|-A (?:DOCKER-USER|FORWARD) -j DOCKFW$)/.test(l))
        .map((l) => `${family} ${l.replace(/\[\d+:\d+\]/, '')}`),
    );
  }
  return lines;
}

/** dockfw's table under the nftables backend, without counters. */
export async function ownedNftables(host: TestHost): Promise<string[]> {
  const out = await host.nft(['list', 'table', 'inet', 'dockfw']);
  // The drop record sets fill with traffic (the blocked probes): their declarations count, not their elements.
  let inRecords = false;
  const kept: string[] = [];
  for (const line of out.split('\n')) {
    if (/^\tset drops[46] \{$/.test(line)) inRecords = true;
    else if (inRecords && line === '\t}') inRecords = false;
    else if (inRecords && !/^\t\t(?:type|size|flags|timeout|counter)\b/.test(line)) continue;
    kept.push(line.replace(/counter packets \d+ bytes \d+/, 'counter'));
  }
  return kept;
}

/** One value of a Prometheus metric, read from dockfw's /metrics in the engine namespace. */
export async function metric(host: TestHost, name: string, labels = ''): Promise<number> {
  const result = await host.exec('curl', ['-s', '--max-time', '10', 'http://127.0.0.1:9811/metrics']);
  const wanted = labels === '' ? name : `${name}{${labels}}`;
  const line = result.stdout.split('\n').find((l) => l.startsWith(`${wanted} `));
  if (line === undefined) throw new Error(`no ${wanted} in /metrics:\n${result.stdout}${result.stderr}`);
  return Number(line.slice(wanted.length + 1));
}

/** Waits for a log record after index `from` that satisfies `test`. */
export async function waitForRecord(
  dockfw: DockfwProcess,
  what: string,
  test: (r: LogRecord) => boolean,
  from = 0,
  timeoutMs = 20_000,
): Promise<LogRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = dockfw.records.slice(from).find(test);
    if (found !== undefined) return found;
    if (Date.now() > deadline)
      throw new Error(`dockfw did not log ${what} within ${timeoutMs} ms:\n${dockfw.output()}`);
    await sleep(50);
  }
}

/** Polls until `check` holds (or fails with `what`). */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Who of `sources` reaches host port `port` on HOST_V4, probed in parallel. */
export async function reachers(host: TestHost, port: number, sources: readonly string[]): Promise<string[]> {
  return host.reachableFrom({ to: HOST_V4, port }, sources);
}

/**
 * The state every fault must leave: the process alive, rules as before, the
 * allowed client of `web` through and the other one blocked, and a container
 * started during the fault closed to everyone (the catch-all).
 */
export async function expectHeld(
  host: TestHost,
  dockfw: DockfwProcess,
  rulesBefore: readonly string[],
  owned: (host: TestHost) => Promise<string[]>,
  webPort: number,
  latePort?: number,
): Promise<void> {
  expect(isAlive(dockfw.pid), dockfw.output()).toBe(true);
  expect(await owned(host)).toEqual(rulesBefore);
  expect(await reachers(host, webPort, [ALLOWED, OTHER])).toEqual([ALLOWED]);
  if (latePort !== undefined) expect(await reachers(host, latePort, [LATE_ALLOWED, OTHER])).toEqual([]);
}
