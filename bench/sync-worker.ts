/**
 * dockfw's sync in-process, inside a bench namespace (started by bench/main.ts
 * with nsenter), against the stand-in engine: the real Docker client, policy,
 * render and reconciler, with the command runner wrapped so every kernel read
 * and write is counted and timed. Prints one `RESULT {json}` line.
 *
 * Phases: first sync; full syncs (dockfw's rules removed before each, so the
 * whole ruleset is written); the floor (the same payload applied alone);
 * periodic checks with nothing changed; the naive way (one command per rule,
 * a sample); one container started at a time through the real event path.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type CommandRunner } from '../src/backends/command.js';
import { runCommand, runCommandWarm } from '../src/backends/iptables/command.js';
import { CHAIN_IN } from '../src/backends/iptables/chains.js';
import { restoreCommand } from '../src/backends/iptables/read.js';
import { SET_ROLES, SET_TYPES, setName } from '../src/backends/iptables/sets.js';
import { IptablesReconciler } from '../src/backends/iptables/reconcile.js';
import { runNft, runNftWarm } from '../src/backends/nftables/command.js';
import { NftablesReconciler } from '../src/backends/nftables/reconcile.js';
import { loadConfig } from '../src/config/config.js';
import type { DockerClient } from '../src/docker/docker-client.js';
import { createDockerClient } from '../src/docker/dockerode-client.js';
import { silentLogger } from '../src/observe/logger.js';
import { systemClock } from '../src/runtime/clock.js';
import { Daemon } from '../src/runtime/daemon.js';
import type { FirewallSync as Firewall } from '../src/backends/firewall.js';
import { createSync, DEEP_CHECK_EVERY } from '../src/runtime/sync.js';
import { ContainerCache, LIST_AFTER_EVENTS } from '../src/docker/container-cache.js';
import { standinPost, wallNow, type Variant } from './lib.js';

export interface SyncSpec {
  readonly socket: string;
  readonly backend: 'iptables' | 'nftables';
  /** Where Docker's chains are (iptables backend). */
  readonly variant: Variant;
  readonly count: number;
  readonly repeats: number;
  /** Rules (or elements) to add one command at a time; 0: skip. */
  readonly naiveSample: number;
  /** Containers to start one by one through the event path; 0: skip. */
  readonly starts: number;
  /** Single set-element adds (and deletes) timed in the full state: a change's floor; 0: skip. */
  readonly elementAdds: number;
}

interface Command {
  readonly file: string;
  readonly args: readonly string[];
  readonly write: boolean;
  readonly ms: number;
  readonly endedAt: number;
  readonly input: string | undefined;
}

export interface PhaseSample {
  readonly ms: number;
  readonly writes: number;
  readonly reads: number;
  /** Time spent in writes (apply) and in reads. */
  readonly applyMs: number;
  readonly readMs: number;
  /** From the first Engine API request (list) to the last answer (inspect). */
  readonly dockerMs: number;
  readonly payloadBytes: number;
  /** Writes per tool, e.g. { 'iptables-nft-restore': 1 }. */
  readonly writesBy: Record<string, number>;
}

export interface StartSample {
  /** From the stand-in's start event to the write holding the new container's rules returning. */
  readonly startToEnforcedMs: number;
  readonly applyMs: number;
  /** Kernel reads (the reconciler's read-back) before that write. */
  readonly readMs: number;
  readonly payloadBytes: number;
  readonly writes: number;
}

export interface SyncResult {
  readonly spec: SyncSpec;
  readonly rules: number;
  readonly first: PhaseSample;
  readonly full: PhaseSample[];
  readonly floorMs: number[];
  readonly check: PhaseSample[];
  /** The same with every container inspected and every element read (every DEEP_CHECK_EVERY-th check). */
  readonly deepCheck: PhaseSample[];
  /** A periodic check once enough events came that the engine may have dropped one: it lists. */
  readonly listedCheck: PhaseSample[];
  readonly naive?: { readonly sampled: number; readonly perRuleMs: number; readonly extrapolatedS: number };
  readonly starts: StartSample[];
  /** ms of each single element add into dockfw's own (full) set. */
  /** One element add written as dockfw writes (to a copy started ahead). */
  readonly elementAddMs: number[];
  /** The same by a new tool process (an admin's command). */
  readonly elementAddColdMs: number[];
}

const log: Command[] = [];
/** The naive way gets this long per backend; the rest is extrapolated. */
const NAIVE_BUDGET_MS = 10_000;

function isWrite(file: string, args: readonly string[]): boolean {
  return (
    file.endsWith('-restore') ||
    (file === 'nft' && args.includes('-f')) ||
    (file === 'ipset' && args[0] === 'restore')
  );
}

/** The real runners as `dockfw run` has them (nft and ipset writes to a copy started ahead), counted and timed. */
const counted: CommandRunner = async (file, args, input) => {
  const started = wallNow();
  const run = file === 'nft' ? runNftWarm : runCommandWarm;
  try {
    return await run(file, args, input);
  } finally {
    const endedAt = wallNow();
    const write = isWrite(file, args);
    log.push({ file, args, write, ms: endedAt - started, endedAt, input: write ? input : undefined });
  }
};

/** The Engine API part of the current phase (first request to last answer). */
const dockerSpan = { start: 0, end: 0 };

/** The real client, with its list/inspect span measured. */
function timedDocker(client: DockerClient): DockerClient {
  return {
    ...client,
    listContainers: async () => {
      if (dockerSpan.start === 0) dockerSpan.start = wallNow();
      try {
        return await client.listContainers();
      } finally {
        dockerSpan.end = wallNow();
      }
    },
    inspectContainer: async (id) => {
      if (dockerSpan.start === 0) dockerSpan.start = wallNow();
      try {
        return await client.inspectContainer(id);
      } finally {
        dockerSpan.end = wallNow();
      }
    },
  };
}

function summarize(commands: readonly Command[], elapsedMs: number): PhaseSample {
  const writes = commands.filter((c) => c.write);
  const reads = commands.filter((c) => !c.write);
  const writesBy: Record<string, number> = {};
  for (const w of writes) writesBy[w.file] = (writesBy[w.file] ?? 0) + 1;
  return {
    ms: elapsedMs,
    writes: writes.length,
    reads: reads.length,
    applyMs: writes.reduce((sum, c) => sum + c.ms, 0),
    readMs: reads.reduce((sum, c) => sum + c.ms, 0),
    dockerMs: dockerSpan.end - dockerSpan.start,
    payloadBytes: writes.reduce((sum, c) => sum + Buffer.byteLength(c.input ?? ''), 0),
    writesBy,
  };
}

async function timed(action: () => Promise<unknown>): Promise<PhaseSample> {
  log.length = 0;
  // A phase that asks the engine nothing shows 0, not the span of the phase before.
  dockerSpan.start = 0;
  dockerSpan.end = 0;
  const started = wallNow();
  await action();
  const sample = summarize(log, wallNow() - started);
  log.length = 0;
  return sample;
}

/**
 * Removes dockfw's per-container verdicts behind its back (not counted), so the
 * next sync writes them all: the nftables table; the iptables IPv4 verdict sets'
 * elements (and DOCKFW-IN's constant rules).
 */
async function removeOwnedRules(spec: SyncSpec): Promise<void> {
  if (spec.backend === 'nftables') {
    await runNft('nft', ['delete', 'table', 'inet', 'dockfw']);
    return;
  }
  for (const role of SET_ROLES) await runCommand('ipset', ['flush', setName(role, 4)]);
  await runCommand(
    restoreCommand(4, spec.variant),
    ['--noflush', '-w'],
    `*filter\n:${CHAIN_IN} - [0:0]\nCOMMIT\n`,
  );
}

/** One `ipset add` per element for a sample of the batch's elements, into a set of their own; ms per element. */
async function naiveIptables(
  spec: SyncSpec,
  payload: string,
): Promise<{ sampled: number; perRuleMs: number }> {
  const allowed = setName('allowed', 4);
  const elements = payload
    .split('\n')
    .map((line) => /^add (?:-exist )?(\S+) (\S+)/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[1]?.startsWith(allowed) === true)
    .map((m) => m[2] ?? '');
  await runCommand('ipset', ['create', 'dockfw-naive', SET_TYPES.allowed, 'maxelem', '1048576']);
  const deadline = Date.now() + NAIVE_BUDGET_MS;
  let done = 0;
  const started = wallNow();
  for (const element of elements.slice(0, spec.naiveSample)) {
    await runCommand('ipset', ['add', '-exist', 'dockfw-naive', element]);
    done++;
    if (Date.now() > deadline) break;
  }
  const perRuleMs = (wallNow() - started) / done;
  await runCommand('ipset', ['destroy', 'dockfw-naive']);
  return { sampled: done, perRuleMs };
}

/** The nftables equivalent: one `nft add element` per element, into a table of its own. */
async function naiveNft(spec: SyncSpec, payload: string): Promise<{ sampled: number; perRuleMs: number }> {
  const elements: string[] = [];
  let inAllowed = false;
  for (const line of payload.split('\n')) {
    if (line.includes('set allowed4 {')) inAllowed = true;
    else if (inAllowed && line.trim() === '}' && elements.length > 0) break;
    else if (inAllowed && /^\t\t\t\d/.test(line)) elements.push(line.trim().replace(/,$/, ''));
  }
  await runNft(
    'nft',
    ['-f', '-'],
    [
      'table inet dockfw_naive {',
      '  set allowed4 { type ipv4_addr . inet_proto . inet_service . ipv4_addr; flags interval; }',
      '}',
      '',
    ].join('\n'),
  );
  const deadline = Date.now() + NAIVE_BUDGET_MS;
  let done = 0;
  const started = wallNow();
  for (const element of elements.slice(0, spec.naiveSample)) {
    await runNft('nft', ['add', 'element', 'inet', 'dockfw_naive', 'allowed4', `{ ${element} }`]);
    done++;
    if (Date.now() > deadline) break;
  }
  const perRuleMs = (wallNow() - started) / done;
  await runNft('nft', ['delete', 'table', 'inet', 'dockfw_naive']);
  return { sampled: done, perRuleMs };
}

function ruleCount(spec: SyncSpec, payload: string): number {
  if (spec.backend === 'iptables')
    return payload.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith('add ')).length;
  return payload.split('\n').filter((l) => /^\t\t\t\d/.test(l)).length;
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Starts containers one at a time at the stand-in; the daemon follows its events. */
async function starts(spec: SyncSpec, firewall: Firewall): Promise<StartSample[]> {
  const config = loadConfig({
    DOCKER_HOST: `unix://${spec.socket}`,
    DOCKFW_BACKEND: spec.backend,
    DOCKFW_RESYNC: '0 0 1 1 *',
    DOCKFW_LISTEN: '',
  });
  let finished = 0;
  const daemon = new Daemon({
    config,
    docker: createDockerClient(config.dockerHost),
    firewall,
    logger: silentLogger(),
    clock: systemClock,
    observer: { syncFinished: () => finished++ },
  });
  const samples: StartSample[] = [];
  daemon.start();
  try {
    await waitFor(() => finished >= 1, 120_000, 'the daemon’s first sync');
    for (let i = 0; i < spec.starts; i++) {
      // Idle: the runner's token bucket full again, no sync running.
      const before = finished;
      await sleep(300);
      if (finished !== before) await sleep(300);
      log.length = 0;
      const { address, emittedAt } = await standinPost<{ address: string; emittedAt: number }>(
        spec.socket,
        '/_bench/start',
      );
      const needle = spec.backend === 'nftables' ? `${address} . ` : ` ${address},`;
      const holds = (c: Command): boolean => c.write && c.input?.includes(needle) === true;
      await waitFor(() => log.some(holds), 120_000, `rules for ${address}`);
      const write = log.find(holds);
      if (write === undefined) throw new Error('unreachable');
      const writes = log.filter((c) => c.write);
      const reads = log.filter((c) => !c.write && c.endedAt <= write.endedAt);
      samples.push({
        startToEnforcedMs: write.endedAt - emittedAt,
        applyMs: write.ms,
        readMs: reads.reduce((sum, c) => sum + c.ms, 0),
        payloadBytes: Buffer.byteLength(write.input ?? ''),
        writes: writes.length,
      });
    }
  } finally {
    await daemon.stop();
  }
  return samples;
}

/**
 * One element added to (then deleted from) dockfw's own allow set, as full as
 * the sync left it: the least one change can cost. Written as dockfw writes
 * (to a copy of `nft -f -` / `ipset restore` started ahead: `warm`), and by a
 * new `nft add element` / `ipset add` process, as an admin's command (`cold`).
 */
async function elementAdds(spec: SyncSpec): Promise<{ warm: number[]; cold: number[] }> {
  const warm: number[] = [];
  const cold: number[] = [];
  for (let i = 0; i < spec.elementAdds; i++) {
    const address = `10.255.${i >> 8}.${i & 255}`;
    let started = wallNow();
    if (spec.backend === 'nftables') {
      const element = `{ ${address} . tcp . 9 . 192.0.2.1 }`;
      await runNft('nft', ['add', 'element', 'inet', 'dockfw', 'allowed4', element]);
      cold.push(wallNow() - started);
      await runNft('nft', ['delete', 'element', 'inet', 'dockfw', 'allowed4', element]);
      // As the starts are spaced: time for the copy started after the last write.
      await sleep(100);
      started = wallNow();
      await runNftWarm('nft', ['-f', '-'], `add element inet dockfw allowed4 ${element}\n`);
      warm.push(wallNow() - started);
      await sleep(100);
      await runNftWarm('nft', ['-f', '-'], `delete element inet dockfw allowed4 ${element}\n`);
    } else {
      const element = `${address},tcp:9,192.0.2.1`;
      await runCommand('ipset', ['add', setName('allowed', 4), element]);
      cold.push(wallNow() - started);
      await runCommand('ipset', ['del', setName('allowed', 4), element]);
      await sleep(100);
      started = wallNow();
      await runCommandWarm('ipset', ['restore'], `add ${setName('allowed', 4)} ${element}\n`);
      warm.push(wallNow() - started);
      await sleep(100);
      await runCommandWarm('ipset', ['restore'], `del ${setName('allowed', 4)} ${element}\n`);
    }
    await sleep(100);
  }
  return { warm, cold };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as SyncSpec;
  const config = loadConfig({
    DOCKER_HOST: `unix://${spec.socket}`,
    DOCKFW_BACKEND: spec.backend,
    DOCKFW_LISTEN: '',
  });
  const docker = timedDocker(createDockerClient(config.dockerHost));
  const firewall: Firewall =
    spec.backend === 'nftables'
      ? new NftablesReconciler({ run: counted })
      : new IptablesReconciler({ run: counted });
  // As `dockfw run` has it: the cache follows the event stream, the ruleset watch is up.
  const cache = new ContainerCache(docker);
  cache.streamUp();
  const sync = createSync({
    docker,
    config,
    firewall,
    logger: silentLogger(),
    cache,
    kernelWatched: () => true,
  });
  // A full sync: the ruleset watch saw dockfw's rules go (the kernel read whole, the engine by its list).
  const reasons = new Set(['watch'] as const);
  // What every DEEP_CHECK_EVERY-th periodic check does: every inspect, every element (as a retry).
  const deep = new Set(['retry'] as const);

  const first = await timed(() => sync(reasons));
  const full: PhaseSample[] = [];
  let payload = '';
  let writes: Command[] = [];
  for (let i = 0; i < spec.repeats; i++) {
    await removeOwnedRules(spec);
    full.push(
      await timed(async () => {
        await sync(reasons);
        const written = log.filter((c) => c.write);
        if (written.length > 0) writes = written;
        payload = written.map((c) => c.input ?? '').join('');
      }),
    );
  }
  // The floor: the same writes (iptables: the ipset batch and the chains) replayed alone.
  const floorMs: number[] = [];
  for (let i = 0; i < spec.repeats; i++) {
    await removeOwnedRules(spec);
    const started = wallNow();
    for (const w of writes) await (w.file === 'nft' ? runNftWarm : runCommandWarm)(w.file, w.args, w.input);
    floorMs.push(wallNow() - started);
  }
  const check: PhaseSample[] = [];
  const deepCheck: PhaseSample[] = [];
  await sync(reasons);
  const periodic = new Set(['periodic'] as const);
  const listedCheck: PhaseSample[] = [];
  // Cheap enough to sample more often than the full syncs; a deep check before each round
  // starts the count again, so no sample is the every-10th deep one.
  const checks = Math.min(Math.max(spec.repeats, 5), DEEP_CHECK_EVERY - 1);
  await sync(deep);
  for (let i = 0; i < checks; i++) check.push(await timed(() => sync(periodic)));
  await sync(deep);
  for (let i = 0; i < checks; i++) {
    for (let e = 0; e < LIST_AFTER_EVENTS; e++) cache.delivered();
    listedCheck.push(await timed(() => sync(periodic)));
  }
  for (let i = 0; i < spec.repeats; i++) deepCheck.push(await timed(() => sync(deep)));

  const rules = ruleCount(spec, payload);
  let naive: SyncResult['naive'];
  if (spec.naiveSample > 0) {
    const sample =
      spec.backend === 'nftables' ? await naiveNft(spec, payload) : await naiveIptables(spec, payload);
    naive = { ...sample, extrapolatedS: (sample.perRuleMs * rules) / 1000 };
  }
  const startSamples = spec.starts > 0 ? await starts(spec, firewall) : [];
  const adds = spec.elementAdds > 0 ? await elementAdds(spec) : { warm: [], cold: [] };
  const result: SyncResult = {
    spec,
    rules,
    first,
    full,
    floorMs,
    check,
    deepCheck,
    listedCheck,
    ...(naive ? { naive } : {}),
    starts: startSamples,
    elementAddMs: adds.warm,
    elementAddColdMs: adds.cold,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  // Idle keep-alive sockets to the stand-in must not hold the process open.
  process.exit(0);
}

await main();
