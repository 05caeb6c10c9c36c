/**
 * Figure 3: event to enforcement on a real engine (test host, Docker 28.5.2,
 * iptables-nft). dockfw runs as a process (dist/); labeled containers are
 * started back to back, each on a published port of its own. Two TCP probers
 * (test/host/prober.mjs) probe every port from outside all along: for each
 * container, from the engine's `start` event (its own timestamp) to the
 * allowed source's first answer; every answer the disallowed source gets is
 * exposure (must be 0). dockfw's "rules applied" log line naming the
 * container's address gives the event-to-write time beside it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { startTestHost, TEST_IMAGE, type TestHost } from '../test/host/index.js';
import { DockfwProcess, type LogRecord } from '../test/e2e/dockfw-process.js';
import { TcpProber, totals, type ProberFigures } from '../test/host/prober.js';
import { median, ms, quantile } from './lib.js';
import type { Report } from './report.js';

const HOST = '203.0.113.1';
const ALLOWED = '203.0.113.10';
const DISALLOWED = '203.0.113.11';
const PORT = 8300;
const PROBE_INTERVAL_MS = 50;
/** Clocks of the engine and the prober: one machine, but an answer may be stamped a little before the event. */
const ANSWER_SLACK_MS = 50;

const ENGINE_MISSED = `Why: see the "rules applied" figure beside it: an allowed source can be answered
only once dockfw wrote the container's rules, so dockfw's own event-to-write time bounds it.`;

/** The engine's start events: container id → event time in ms. */
async function followStarts(docker: Docker): Promise<{ starts: Map<string, number>; close(): void }> {
  const starts = new Map<string, number>();
  const stream = (await docker.getEvents({
    filters: { type: ['container'], event: ['start'] },
  })) as NodeJS.ReadableStream & {
    destroy(): void;
  };
  let buffer = '';
  stream.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      const event = JSON.parse(line) as { id?: string; Actor?: { ID?: string }; timeNano?: number };
      const id = event.Actor?.ID ?? event.id;
      if (id !== undefined && event.timeNano !== undefined) starts.set(id, event.timeNano / 1e6);
    }
  });
  stream.on('error', () => undefined);
  return { starts, close: () => stream.destroy() };
}

/** The first "rules applied" record whose `field` (missing: added, unexpected: removed) names `needle`. */
function appliedAt(
  records: readonly LogRecord[],
  field: 'missing' | 'unexpected',
  needle: string,
): number | undefined {
  const applied = records.find((r) => {
    const lines = r[field];
    return r.msg === 'rules applied' && Array.isArray(lines) && lines.some((m) => String(m).includes(needle));
  });
  return applied === undefined ? undefined : Number(applied.time);
}

/** When dockfw logged the engine's `start` event for container `id`. */
function receivedAt(records: readonly LogRecord[], id: string): number | undefined {
  const event = records.find((r) => r.msg === 'docker event' && r.action === 'start' && r.container === id);
  return event === undefined ? undefined : Number(event.time);
}

/** When the allowed prober first got an answer from a target, if at or after `from` (ms since the epoch). */
function firstAnswer(figures: ProberFigures, target: string, from: number): number | undefined {
  return figures.targets[target]?.answeredAt.find((at) => at >= from - ANSWER_SLACK_MS);
}

/**
 * `count` labeled containers, each on its own published port, started back to
 * back (`docker run -d` one after another, without waiting for dockfw). Two
 * TCP probers probe every port from outside all along: the allowed source
 * must be answered within 1 s of each container's start event, the
 * disallowed one never.
 */
async function measureBackend(
  report: Report,
  host: TestHost,
  docker: Docker,
  backend: 'auto' | 'nftables',
  count: number,
): Promise<void> {
  const dockfw = DockfwProcess.start(host, {
    // debug: its "docker event" lines split each delay into the engine's and dockfw's part.
    DOCKFW_LOG_LEVEL: 'debug',
    DOCKFW_BACKEND: backend,
    DOCKFW_LISTEN: '',
  });
  const events = await followStarts(docker);
  const targets = Array.from({ length: count }, (_, i) => `${HOST}:${PORT + i}`);
  const label = backend === 'auto' ? 'iptables (auto on 28.5)' : 'nftables';
  const ids: string[] = [];
  let allowed: TcpProber | undefined;
  let disallowed: TcpProber | undefined;
  let allowedFigures: ProberFigures | undefined;
  let disallowedFigures: ProberFigures | undefined;
  const addresses = new Map<string, string>();
  try {
    await dockfw.waitForLog('connected to docker');
    await sleep(500);
    const probe = { targets, intervalMs: PROBE_INTERVAL_MS, timeoutMs: 200 };
    // The allowed prober waits for each container's first answer; answering it 20 times a
    // second after that would only load the 2-core machine (a connection and a fork each).
    allowed = await TcpProber.start(host.clientNs, { ...probe, from: ALLOWED, answeredIntervalMs: 1000 });
    disallowed = await TcpProber.start(host.clientNs, { ...probe, from: DISALLOWED });
    for (let i = 0; i < count; i++) {
      const { stdout } = await host.docker([
        'run',
        '-d',
        '--name',
        `e2e-bench-${backend}-${i}`,
        '-p',
        `${PORT + i}:80`,
        '-l',
        `dockfw.allow=${ALLOWED}`,
        TEST_IMAGE,
      ]);
      ids.push(stdout.trim());
    }
    // Every container's first answer to the allowed source, or 10 s past the last start.
    const deadline = Date.now() + 10_000;
    while (events.starts.size < count && Date.now() < deadline) await sleep(50);
    await sleep(Math.max(0, Math.min(deadline - Date.now(), 3000)));
    for (const id of ids) {
      const address = (await host.containerAddresses(id)).v4[0];
      if (address !== undefined) addresses.set(id, address);
    }
  } finally {
    allowedFigures = await allowed?.stop();
    disallowedFigures = await disallowed?.stop();
    events.close();
    await dockfw.stop();
    if (ids.length > 0) await host.docker(['rm', '-f', ...ids], { reject: false });
  }
  if (allowedFigures === undefined || disallowedFigures === undefined) throw new Error('probers did not run');
  const toAnswer: number[] = [];
  const toRules: number[] = [];
  const toReceived: number[] = [];
  const receivedToRules: number[] = [];
  let unanswered = 0;
  ids.forEach((id, i) => {
    const started = events.starts.get(id);
    const target = targets[i] ?? '';
    const answered = started === undefined ? undefined : firstAnswer(allowedFigures, target, started);
    if (started === undefined || answered === undefined) unanswered++;
    else toAnswer.push(Math.max(0, answered - started));
    const address = addresses.get(id);
    const needle = backend === 'nftables' ? `: ${address} . ` : `${address}`;
    const applied = address === undefined ? undefined : appliedAt(dockfw.records, 'missing', needle);
    if (started !== undefined && applied !== undefined) toRules.push(applied - started);
    const received = receivedAt(dockfw.records, id);
    if (started !== undefined && received !== undefined) toReceived.push(received - started);
    if (received !== undefined && applied !== undefined) receivedToRules.push(applied - received);
  });
  const p99 = unanswered > 0 ? Infinity : quantile(toAnswer, 0.99);
  report.figure({
    name: `${label}: ${count} labeled containers started back to back: start event → the allowed source answered, median / p99`,
    value: `${ms(median(toAnswer))} / ${ms(p99)} (max ${ms(Math.max(...toAnswer))}${unanswered > 0 ? `; ${unanswered} never answered` : ''}; probing every ${PROBE_INTERVAL_MS} ms)`,
    target: 'p99 within 1 s',
    met: p99 <= 1000,
    ifMissed: ENGINE_MISSED,
  });
  report.figure({
    name: `${label}: start event → "rules applied" naming the container (n=${toRules.length}), median / p99`,
    value: `${ms(median(toRules))} / ${ms(quantile(toRules, 0.99))}`,
    target: '',
  });
  report.figure({
    name: `${label}: of which start event → dockfw got it (n=${toReceived.length}) / got it → "rules applied" (n=${receivedToRules.length}), median / p99`,
    value: `${ms(median(toReceived))} / ${ms(quantile(toReceived, 0.99))}; ${ms(median(receivedToRules))} / ${ms(quantile(receivedToRules, 0.99))}`,
    target: '',
  });
  const bad = totals(disallowedFigures);
  const good = totals(allowedFigures);
  report.figure({
    name: `${label}: exposure, answers to a disallowed client probing every port all along`,
    value: `${bad.answers} of ${bad.sent} probes (the allowed client: ${good.answers} of ${good.sent})`,
    target: '0',
    met: bad.answers === 0 && good.answers > 0,
    ifMissed:
      'A disallowed client got answers (or the allowed one none, so the probe proves nothing): this is a correctness failure, not a performance one; the e2e suites should reproduce it.',
  });
}

export async function engineBench(
  report: Report,
  options: { starts: number; backends: readonly ('auto' | 'nftables')[] },
): Promise<void> {
  report.section('Event to enforcement on a real engine (Docker 28.5.2, iptables-nft)');
  const host = await startTestHost({ engine: '28.5', iptables: 'nft' });
  const docker = new Docker({ socketPath: host.socket });
  try {
    for (const backend of options.backends)
      await measureBackend(report, host, docker, backend, options.starts);
  } finally {
    await DockfwProcess.stopAll();
    await host.stop();
  }
}
