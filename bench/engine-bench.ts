/**
 * Figure 3: event to enforcement on a real engine (test host, Docker 28.5.2,
 * iptables-nft). dockfw runs as a process (dist/); labeled containers are
 * started one at a time on one published port. For each start: from the
 * engine's `start` event (its own timestamp) to dockfw's log line saying it
 * applied rules naming the container's address (logged right after the
 * kernel accepted them). Meanwhile a disallowed client probes that port in a
 * tight loop; every answer it gets is exposure (must be 0). An allowed client
 * probes too, to show the port does answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { startTestHost, TEST_IMAGE, type TestHost } from '../test/host/index.js';
import { DockfwProcess, type LogRecord } from '../test/e2e/dockfw-process.js';
import { median, ms, quantile, track } from './lib.js';
import type { Report } from './report.js';

const HOST = '203.0.113.1';
const ALLOWED = '203.0.113.10';
const DISALLOWED = '203.0.113.11';
const PORT = 8300;

interface Prober {
  answers(): number;
  attempts(): number;
  stop(): void;
}

/** curl in a loop from `from` in the client namespace; counts HTTP 200 answers. */
function startProber(host: TestHost, from: string): Prober {
  const loop = `while :; do curl --interface ${from} -s -o /dev/null -w '%{http_code}\\n' --connect-timeout 0.3 -m 1 http://${HOST}:${PORT}/; done`;
  const child: ChildProcess = track(
    spawn('nsenter', [`--net=/var/run/netns/${host.clientNs}`, '--', 'sh', '-c', loop], {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    }),
  );
  let answers = 0;
  let attempts = 0;
  let buffer = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      attempts++;
      if (line.trim() === '200') answers++;
    }
  });
  return {
    answers: () => answers,
    attempts: () => attempts,
    // Its own process group (detached), so the loop's curl goes too.
    stop: () => {
      if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    },
  };
}

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

async function measureBackend(
  report: Report,
  host: TestHost,
  docker: Docker,
  backend: 'auto' | 'nftables',
  count: number,
): Promise<void> {
  const dockfw = DockfwProcess.start(host, {
    DOCKFW_LOG_LEVEL: 'info',
    DOCKFW_BACKEND: backend,
    DOCKFW_LISTEN: '',
  });
  const events = await followStarts(docker);
  const disallowed = startProber(host, DISALLOWED);
  const allowed = startProber(host, ALLOWED);
  const times: number[] = [];
  const label = backend === 'auto' ? 'iptables (auto on 28.5)' : 'nftables';
  try {
    await dockfw.waitForLog('connected to docker');
    await sleep(500);
    for (let i = 0; i < count; i++) {
      const name = `e2e-bench-${backend}-${i}`;
      const from = dockfw.records.length;
      const { stdout } = await host.docker([
        'run',
        '-d',
        '--name',
        name,
        '-p',
        `${PORT}:80`,
        '-l',
        `dockfw.allow=${ALLOWED}`,
        TEST_IMAGE,
      ]);
      const id = stdout.trim();
      const address = (await host.containerAddresses(id)).v4[0];
      if (address === undefined) throw new Error(`${name} has no IPv4 address`);
      const needle = backend === 'nftables' ? `: ${address} . ` : `-d ${address}/32 `;
      const deadline = Date.now() + 20_000;
      let enforced: number | undefined;
      while (
        (enforced = appliedAt(dockfw.records.slice(from), 'missing', needle)) === undefined ||
        !events.starts.has(id)
      ) {
        if (Date.now() > deadline)
          throw new Error(`no "rules applied" for ${address} (${name}):\n${dockfw.output().slice(-3000)}`);
        await sleep(10);
      }
      times.push(enforced - (events.starts.get(id) ?? NaN));
      // Let the allowed prober get through at least once per container.
      const answered = allowed.answers();
      const until = Date.now() + 3000;
      while (allowed.answers() === answered && Date.now() < until) await sleep(20);
      await host.docker(['rm', '-f', id]);
      // The next container gets the same address: wait until dockfw removed this one's rules.
      const removedBy = Date.now() + 20_000;
      while (
        appliedAt(dockfw.records.slice(from), 'unexpected', needle) === undefined &&
        Date.now() < removedBy
      )
        await sleep(20);
    }
  } finally {
    disallowed.stop();
    allowed.stop();
    events.close();
    await dockfw.stop();
  }
  report.figure({
    name: `${label}: start event → rules in the kernel (n=${times.length}), median / p99`,
    value: `${ms(median(times))} / ${ms(quantile(times, 0.99))} (max ${ms(Math.max(...times))})`,
    target: '',
  });
  report.figure({
    name: `${label}: exposure window, answers to a disallowed client probing in a loop`,
    value: `${disallowed.answers()} of ${disallowed.attempts()} probes (the allowed client: ${allowed.answers()} of ${allowed.attempts()})`,
    target: '0',
    met: disallowed.answers() === 0 && allowed.answers() > 0,
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
