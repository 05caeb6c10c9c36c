/**
 * The soak run: create/start/stop/remove cycles of labelled containers on a
 * real engine while one dockfw runs throughout. After every start and every
 * stop of a batch, dockfw's rules must name exactly the running containers
 * (`docker ps`) within a few seconds ("no missed container"); after each batch
 * its resident memory (VmRSS) and open handles (/proc/PID/fd) are sampled. At
 * the end its rules must be exactly the baseline again.
 * Used by test/e2e/soak.test.ts (reduced) and scripts/soak.ts (1,000 cycles).
 * No vitest here, so the script can run it too.
 */
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TEST_IMAGE, type TestHost } from '../host/index.js';
import type { DockfwProcess } from './dockfw-process.js';

export interface SoakSample {
  readonly cycles: number;
  readonly rssKb: number;
  readonly fds: number;
}

export interface SoakResult {
  readonly baseline: readonly string[];
  readonly final: readonly string[];
  readonly samples: readonly SoakSample[];
  /** Slowest time for the rules to match `docker ps` after a batch's start or stop. */
  readonly slowestMatchMs: number;
}

export interface SoakOptions {
  readonly cycles: number;
  /** Containers per batch (created, started, stopped, removed together). */
  readonly batch: number;
  /** How long the rules may take to match `docker ps`. */
  readonly matchTimeoutMs?: number;
  readonly onBatch?: (sample: SoakSample, result: { slowestMatchMs: number }) => void;
}

/** dockfw's verdict sets (not the temporaries a full write swaps in). */
const VERDICT_SET = /^dockfw-(?:bound|boundip|boundany|allowed|guarded)[46]$/;

/**
 * dockfw's rules as iptables-save prints them (IPv4: every container has an
 * IPv4 address here), then its verdict sets' elements as `ipset save` prints them.
 */
async function ownedRules(host: TestHost): Promise<string[]> {
  const save = await host.iptablesSave(4, 'filter');
  const chains = save.split('\n').filter((l) => /^(?::DOCKFW|-A DOCKFW|-A DOCKER-USER -j DOCKFW$)/.test(l));
  const sets = await host.exec('ipset', ['save']);
  if (sets.exitCode !== 0) throw new Error(`ipset save failed (${sets.exitCode}): ${sets.stderr}`);
  const elements = sets.stdout
    .split('\n')
    .filter((l) => l.startsWith('add ') && VERDICT_SET.test(l.split(' ')[1] ?? ''))
    .sort();
  return [...chains, ...elements];
}

/** Container addresses the rules judge (the guarded set: judged, everyone else dropped). */
function judgedAddresses(rules: readonly string[]): Set<string> {
  return new Set(rules.flatMap((l) => /^add dockfw-guarded4 ([0-9.]+),/.exec(l)?.[1] ?? []));
}

/** The IPv4 addresses of the running containers (each publishes a port under a dockfw.allow label). */
async function runningAddresses(host: TestHost, ids: ReadonlySet<string>): Promise<Set<string>> {
  if (ids.size === 0) return new Set();
  const { stdout } = await host.docker([
    'inspect',
    '--format',
    '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
    ...ids,
  ]);
  return new Set(stdout.split(/\s+/).filter(Boolean));
}

async function runningIds(host: TestHost): Promise<Set<string>> {
  const { stdout } = await host.docker(['ps', '--quiet', '--no-trunc']);
  return new Set(
    stdout
      .split('\n')
      .filter(Boolean)
      .map((id) => id.slice(0, 12)),
  );
}

function same(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** Waits until the rules judge exactly the running containers; returns how long it took. */
async function rulesMatchPs(host: TestHost, timeoutMs: number, when: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    const [ids, rules] = await Promise.all([runningIds(host), ownedRules(host)]);
    // A container stopped between the two reads: ask again.
    const running = await runningAddresses(host, ids).catch(() => undefined);
    const judged = judgedAddresses(rules);
    if (running !== undefined && same(running, judged)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `missed container ${when}: docker ps has ${[...ids].join(' ')} at ${[...(running ?? [])].join(' ')}; ` +
          `rules judge ${[...judged].join(' ')}`,
      );
    }
    await sleep(100);
  }
}

async function readSample(pid: number, cycles: number): Promise<SoakSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { cycles, rssKb, fds };
}

/**
 * The lowest of a few readings 250 ms apart: a sync that is running (the
 * removals' events) holds pipes to its iptables children for a moment, which
 * is not what a leak looks like.
 */
export async function sample(pid: number, cycles: number): Promise<SoakSample> {
  const readings: SoakSample[] = [];
  for (let i = 0; i < 4; i++) {
    if (i > 0) await sleep(250);
    readings.push(await readSample(pid, cycles));
  }
  return {
    cycles,
    rssKb: Math.min(...readings.map((r) => r.rssKb)),
    fds: Math.min(...readings.map((r) => r.fds)),
  };
}

export async function runSoak(
  host: TestHost,
  dockfw: DockfwProcess,
  options: SoakOptions,
): Promise<SoakResult> {
  const timeout = options.matchTimeoutMs ?? 10_000;
  await rulesMatchPs(host, timeout, 'before the run');
  const baseline = await ownedRules(host);
  const samples: SoakSample[] = [await sample(dockfw.pid, 0)];
  let slowestMatchMs = 0;
  for (let done = 0; done < options.cycles;) {
    const size = Math.min(options.batch, options.cycles - done);
    const names = Array.from({ length: size }, (_, i) => `soak-${done + i}`);
    for (const [i, name] of names.entries()) {
      // Alternate the allow lists so rules differ from container to container.
      const allow = i % 2 === 0 ? '203.0.113.11' : '198.51.100.0/24, 2001:db8::/32';
      await host.docker([
        'create',
        ...['--name', name, '--publish', '80', '--env', 'SERVE_TCP=80', '--env', 'SERVE_UDP=53'],
        ...['--label', `dockfw.allow=${allow}`, TEST_IMAGE],
      ]);
    }
    await host.docker(['start', ...names]);
    // The check below means something only if they all run.
    const running = await runningIds(host);
    if (running.size < size) throw new Error(`only ${running.size} of ${size} containers run`);
    slowestMatchMs = Math.max(
      slowestMatchMs,
      await rulesMatchPs(host, timeout, `after starting ${names.join(' ')}`),
    );
    await host.docker(['stop', '--time', '0', ...names]);
    slowestMatchMs = Math.max(
      slowestMatchMs,
      await rulesMatchPs(host, timeout, `after stopping ${names.join(' ')}`),
    );
    await host.docker(['rm', ...names]);
    done += size;
    const now = await sample(dockfw.pid, done);
    samples.push(now);
    options.onBatch?.(now, { slowestMatchMs });
  }
  await rulesMatchPs(host, timeout, 'at the end');
  return { baseline, final: await ownedRules(host), samples, slowestMatchMs };
}

/** Start → end figures, and the steady level (the median of the second half) next to the first batch's. */
export function summarize(samples: readonly SoakSample[]): string {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined) return 'no samples';
  const secondHalf = samples
    .slice(Math.floor(samples.length / 2))
    .map((s) => s.rssKb)
    .sort((a, b) => a - b);
  const median = secondHalf[Math.floor(secondHalf.length / 2)] ?? Number.NaN;
  const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;
  return (
    `cycles ${last.cycles}: RSS ${mb(first.rssKb)} → ${mb(last.rssKb)} ` +
    `(after first batch ${mb(samples[1]?.rssKb ?? Number.NaN)}, median of second half ${mb(median)}, ` +
    `max ${mb(Math.max(...samples.map((s) => s.rssKb)))}); open fds ${first.fds} → ${last.fds} ` +
    `(max ${Math.max(...samples.map((s) => s.fds))})`
  );
}
