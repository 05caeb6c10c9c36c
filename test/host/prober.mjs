#!/usr/bin/env node
/* global process, setTimeout, clearTimeout, setInterval, clearInterval */
/**
 * A tight TCP prober, run inside a test host's client namespace (started by
 * prober.ts). Every `intervalMs` it opens a new connection from `from` to each
 * target, without waiting for the ones still in flight, so a dropped SYN does
 * not leave a gap. A completed connect is an answer (the port answered a source
 * it must not); an HTTP status line back is counted too. Refused, timed out:
 * no answer. Prints one JSON line `{"ready":true}` once probing, and the
 * figures as one JSON line when it gets SIGTERM or SIGINT, then exits.
 *
 * With `answeredIntervalMs`, a target that answered is probed only that often.
 *
 * Usage: node prober.mjs '{"from":"203.0.113.10","targets":["203.0.113.1:9201"],"intervalMs":15}'
 */
import net from 'node:net';

const config = JSON.parse(process.argv[2] ?? '{}');
const from = String(config.from);
const targets = /** @type {string[]} */ (config.targets ?? []);
const intervalMs = Number(config.intervalMs ?? 15);
const timeoutMs = Number(config.timeoutMs ?? 300);
const answerMs = Number(config.answerMs ?? 1000);
const maxInFlight = Number(config.maxInFlight ?? 300);
const answeredIntervalMs = Number(config.answeredIntervalMs ?? 0);
/** Keep the first few answer times per target, to line them up with what happened. */
const KEPT_TIMES = 1000;

function parseTarget(target) {
  const sep = target.lastIndexOf(':');
  return { host: target.slice(0, sep).replace(/^\[(.*)\]$/, '$1'), port: Number(target.slice(sep + 1)) };
}

const stats = Object.fromEntries(
  targets.map((t) => [
    t,
    { sent: 0, connected: 0, http: 0, refused: 0, timedOut: 0, skipped: 0, errors: {}, answeredAt: [] },
  ]),
);
const parsed = Object.fromEntries(targets.map((t) => [t, parseTarget(t)]));
/** When each target was last probed. */
const lastSent = Object.fromEntries(targets.map((t) => [t, 0]));
let inFlight = 0;

function probe(target) {
  const s = stats[target];
  if (inFlight >= maxInFlight) {
    s.skipped++;
    return;
  }
  s.sent++;
  inFlight++;
  let done = false;
  let connected = false;
  const socket = net.connect({ ...parsed[target], localAddress: from });
  let timer;
  const finish = (outcome) => {
    if (done) return;
    done = true;
    inFlight--;
    clearTimeout(timer);
    socket.destroy();
    if (outcome === 'refused' || outcome === 'timedOut') s[outcome]++;
    else if (outcome !== undefined) s.errors[outcome] = (s.errors[outcome] ?? 0) + 1;
  };
  timer = setTimeout(() => finish(connected ? undefined : 'timedOut'), timeoutMs);
  socket.once('connect', () => {
    connected = true;
    s.connected++;
    if (s.answeredAt.length < KEPT_TIMES) s.answeredAt.push(Date.now());
    clearTimeout(timer);
    timer = setTimeout(() => finish(), answerMs);
    socket.write('GET / HTTP/1.0\r\n\r\n');
  });
  socket.once('data', (chunk) => {
    if (/^HTTP\/1\.[01] \d{3}/.test(chunk.toString('latin1'))) s.http++;
    finish();
  });
  socket.once('error', (error) => {
    if (connected) return finish();
    finish(error.code === 'ECONNREFUSED' ? 'refused' : String(error.code ?? error.message));
  });
  socket.once('close', () => finish());
}

const startedAt = Date.now();
const ticker = setInterval(() => {
  const now = Date.now();
  for (const target of targets) {
    if (stats[target].connected > 0 && now - lastSent[target] < answeredIntervalMs) continue;
    lastSent[target] = now;
    probe(target);
  }
}, intervalMs);
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  const stoppedAt = Date.now();
  // Let the probes in flight finish: an answer to the last of them still counts.
  const deadline = stoppedAt + timeoutMs + answerMs + 200;
  const wait = setInterval(() => {
    if (inFlight > 0 && Date.now() < deadline) return;
    clearInterval(wait);
    // Exit once the line is written: a large one to a pipe is written asynchronously.
    process.stdout.write(
      `${JSON.stringify({ from, intervalMs, startedAt, stoppedAt, inFlight, targets: stats })}\n`,
      () => process.exit(0),
    );
  }, 10);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
