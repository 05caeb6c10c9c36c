/**
 * A misbehaving Engine API on a real engine (Docker 28.5, iptables-nft): dockfw
 * talks to it through a fault-injecting, recording proxy (test/host/fault-proxy.ts).
 * The engine answers 500, answers slowly, hangs up half-way through an answer,
 * closes the event stream, lists a container that is gone by the time dockfw
 * inspects it. After each: a clear log line, a metric, a retry, the rules in
 * place kept (no flush), the allowed client through, the other still blocked,
 * and no crash. The proxy's record of the whole run then shows dockfw only read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, type TestHost } from '../host/index.js';
import { startFaultProxy, type FaultProxy } from '../host/fault-proxy.js';
import { DockfwProcess } from './dockfw-process.js';
import {
  ALLOWED,
  expectHeld,
  LATE_ALLOWED,
  metric,
  OTHER,
  ownedIptables,
  reachers,
  waitForRecord,
  waitUntil,
} from './hardening-support.js';

const WEB_PORT = 8080;
const WARN = 40;
/** A periodic check every 3 s here: every 10th (the deep one) lists and inspects everything. */
const RESYNC = '*/3 * * * * *';
/** A full read (the deep check) comes within this. */
const FULL_READ_MS = 75_000;
/** Read-only endpoints dockfw may call (optional API version prefix stripped by the proxy). */
const READ_ENDPOINTS = [
  /^\/_ping$/,
  /^\/version$/,
  /^\/info$/,
  /^\/events$/,
  /^\/containers\/json$/,
  /^\/containers\/[0-9a-f]{64}\/json$/,
  /^\/networks$/,
];

describe('a misbehaving Engine API: rules stay, blocked stays blocked, dockfw only reads', () => {
  let host: TestHost;
  let proxy: FaultProxy;
  let dockfw: DockfwProcess;
  let nextPort = 8090;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft' });
    proxy = await startFaultProxy(host.socket, `${host.socket}.faulty`);
    await host.runContainer({ name: 'web', ports: [`${WEB_PORT}:80`], labels: { 'dockfw.allow': ALLOWED } });
    dockfw = DockfwProcess.start(host, {
      DOCKER_HOST: proxy.dockerHost,
      DOCKFW_BACKEND: 'iptables',
      DOCKFW_LOG_LEVEL: 'debug',
      DOCKFW_RESYNC: RESYNC,
    });
    await dockfw.waitForLog('rules applied');
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
  });

  afterAll(async () => {
    if (proxy !== undefined) proxy.fault = undefined;
    await DockfwProcess.stopAll();
    await proxy?.close();
    await host?.stop();
  });

  async function startLate(name: string): Promise<number> {
    const port = nextPort++;
    await host.runContainer({ name, ports: [`${port}:80`], labels: { 'dockfw.allow': LATE_ALLOWED } });
    return port;
  }

  const lateJudged = (port: number) => async () =>
    (await reachers(host, port, [LATE_ALLOWED, OTHER])).join() === LATE_ALLOWED;

  it('answers 500 to every container list: warned once, retried with backoff, rules kept', async () => {
    const rules = await ownedIptables(host);
    const failuresBefore = await metric(host, 'dockfw_syncs_total', 'result="failure"');
    const from = dockfw.records.length;
    proxy.fault = { kind: 'status', status: 500, path: /^\/containers\/json$/ };
    const latePort = await startLate('late-500');
    // An event sync inspects only the container its events name: no list, so the late one is judged.
    await waitUntil('the late container judged without a list', lateJudged(latePort));
    // The list is read by full reads (startup, reconnect, retry, every 10th periodic check, or
    // once enough events came that the engine may have dropped one): the next one meets the 500.
    const line = await waitForRecord(dockfw, 'a failed sync', (r) => r.level >= WARN, from, FULL_READ_MS);
    expect(line.msg).toBe('sync failed: cannot read containers from docker');
    expect(String(line.error)).toMatch(/500/);
    const retry = await waitForRecord(dockfw, 'a retry', (r) => r.msg === 'sync failed again', from);
    expect(retry.retryInMs).toBeGreaterThan(line.retryInMs as number);
    // Rules kept: the chains as they were, the late container as its labels say.
    await expectHeld(host, dockfw, rules, ownedIptables, WEB_PORT);
    expect(await reachers(host, latePort, [LATE_ALLOWED, OTHER])).toEqual([LATE_ALLOWED]);
    // One warning however many retries.
    expect(dockfw.records.slice(from).filter((r) => r.level >= WARN)).toHaveLength(1);
    proxy.fault = undefined;
    await waitForRecord(dockfw, 'recovery', (r) => r.msg === 'sync succeeded again', from, 40_000);
    await waitUntil('the late container judged', lateJudged(latePort));
    expect(await metric(host, 'dockfw_syncs_total', 'result="failure"')).toBeGreaterThan(failuresBefore);
  });

  it('answers slowly (2 s per inspect): syncs finish late, no errors, nothing dropped', async () => {
    const from = dockfw.records.length;
    proxy.fault = { kind: 'delay', ms: 2000, path: /^\/containers\/[0-9a-f]+\/json$/ };
    const started = Date.now();
    const latePort = await startLate('late-slow');
    await waitUntil('the late container judged', lateJudged(latePort), 30_000);
    console.log(`slow engine: late container judged after ${Date.now() - started} ms`);
    proxy.fault = undefined;
    expect(dockfw.records.slice(from).filter((r) => r.level >= WARN)).toEqual([]);
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
  });

  it('hangs up half-way through answers and cuts the event stream: reconnects, gives up on the answer after 30 s, rules kept', async () => {
    const rules = await ownedIptables(host);
    const reconnectsBefore = await metric(host, 'dockfw_event_stream_reconnects_total');
    const from = dockfw.records.length;
    proxy.fault = { kind: 'cut-body', path: /^\/containers\/json$/ };
    expect(proxy.cutEventStreams()).toBe(1);
    const lost = await waitForRecord(dockfw, 'the lost stream', (r) => r.level >= WARN, from);
    expect(lost.msg).toBe('docker unreachable: keeping rules, retrying');
    const latePort = await startLate('late-cut');
    await expectHeld(host, dockfw, rules, ownedIptables, WEB_PORT, latePort);
    // The cut list is given up after 30 s (docker-modem alone would wait forever).
    const givenUp = await waitForRecord(
      dockfw,
      'the cut answer given up',
      (r) => /no complete answer within 30 s/.test(String(r.error)),
      from,
      45_000,
    );
    expect(await ownedIptables(host)).toEqual(rules);
    // Cleared before the retry (1 s later) asks again.
    proxy.fault = undefined;
    console.log(`cut answer: ${givenUp.msg}: ${String(givenUp.error)}`);
    await waitUntil('the late container judged', lateJudged(latePort), 30_000);
    await waitForRecord(dockfw, 'the reconnection', (r) => r.msg === 'connected to docker', from);
    expect(await metric(host, 'dockfw_event_stream_reconnects_total')).toBeGreaterThan(reconnectsBefore);
  });

  it('lists a container that is gone when inspected: skipped without a word, the others synced', async () => {
    const from = dockfw.records.length;
    proxy.fault = { kind: 'ghost', id: 'f'.repeat(64) };
    const latePort = await startLate('late-ghost');
    await waitUntil('the late container judged', lateJudged(latePort), 20_000);
    // Only a full or listed read (the deep periodic check) lists; an event sync inspects the evented container.
    const full = await waitForRecord(
      dockfw,
      'a read of the list',
      (r) => r.msg === 'containers read' && (r.full === true || r.listed === true),
      from,
      FULL_READ_MS,
    );
    // dockfw did ask the engine about the ghost, and the engine said 404.
    expect(proxy.calls.some((c) => c.path === `/containers/${'f'.repeat(64)}/json`)).toBe(true);
    // That sync went on to the firewall.
    await waitForRecord(
      dockfw,
      'the full sync finished',
      (r) => r.msg === 'firewall in sync' || r.msg === 'rules applied',
      dockfw.records.indexOf(full) + 1,
    );
    proxy.fault = undefined;
    expect(dockfw.records.slice(from).filter((r) => r.level >= WARN)).toEqual([]);
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
    expect(await reachers(host, latePort, [LATE_ALLOWED, OTHER])).toEqual([LATE_ALLOWED]);
  });

  it('stops and removes containers, then: every call it made was a read', async () => {
    const { v4 } = await host.containerAddresses('late-500');
    // Its verdicts live in the iptables backend's sets (`add dockfw-allowed4 ADDR,tcp:80,…`).
    expect(v4.length).toBeGreaterThan(0);
    const named = async () => {
      const sets = await host.exec('ipset', ['save']);
      if (sets.exitCode !== 0) throw new Error(`ipset save failed: ${sets.stderr}`);
      return sets.stdout.split('\n').filter((l) => v4.some((a) => l.includes(` ${a},`)));
    };
    expect(await named()).not.toEqual([]);
    await host.docker(['stop', '-t', '1', 'late-500']);
    await host.docker(['rm', 'late-500', 'late-slow', '--force']);
    await waitUntil('the removed container forgotten', async () => (await named()).length === 0);
    const calls = proxy.calls.map((c) => `${c.method} ${c.path}`);
    const counts = new Map<string, number>();
    for (const call of calls.map((c) => c.replace(/[0-9a-f]{64}/, '{id}')))
      counts.set(call, (counts.get(call) ?? 0) + 1);
    console.log(`Engine API calls made by dockfw: ${JSON.stringify(Object.fromEntries(counts))}`);
    expect(calls.length).toBeGreaterThan(10);
    for (const call of proxy.calls) {
      expect(['GET', 'HEAD'], `${call.method} ${call.url}`).toContain(call.method);
      expect(
        READ_ENDPOINTS.some((p) => p.test(call.path)),
        call.url,
      ).toBe(true);
    }
    // The record covers the whole life of the process: events, lists, inspects.
    for (const endpoint of ['/events', '/containers/json', '/networks'])
      expect(calls).toContain(`GET ${endpoint}`);
  });
});
