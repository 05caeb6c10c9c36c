// `nft monitor` as a child process: one line per ruleset change, as the kernel
// reports it (iptables-nft writes show up too; legacy iptables ones do not).
// The line grammar is `<verb> <object> <family> <table> [<chain|set> …]`,
// and `# new generation N by process P (name)` after each transaction: the
// kernel bumps the generation on every commit and always reports it, even when
// nft prints nothing for the objects (nft 1.0.6 sometimes misses elements).
//
// Started through `setpriv --pdeathsig KILL` (util-linux) where it exists, so
// the kernel kills the monitor when dockfw dies, SIGKILL included; without
// setpriv a killed dockfw leaves its monitor running (one warning says so).
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { OWNED_NAMES } from '../backends/create.js';

/** A running monitor: its output lines, until it exits. */
export interface MonitorProcess {
  /** Ends when the process exits; throws when it could not start. */
  readonly lines: AsyncIterable<string>;
  /** Resolves when the process has exited (or failed to start). */
  readonly exited: Promise<MonitorExit>;
  stop(): void;
}

export interface MonitorExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all. */
  readonly error?: NodeJS.ErrnoException;
  /** The end of its stderr, to say why it died. */
  readonly stderr: string;
}

export type MonitorSpawner = () => MonitorProcess;

const STDERR_KEPT = 2000;

/** The first executable `name` on PATH, if any. */
export function findOnPath(name: string, searchPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface NftMonitorOptions {
  /** Said once, when the monitor cannot be tied to dockfw's life (no setpriv). */
  readonly warn: (message: string) => void;
  /** Looks a program up on PATH (tests replace it). */
  readonly find?: (name: string) => string | undefined;
}

/**
 * Starts `nft monitor` (argument array, no shell), through
 * `setpriv --pdeathsig KILL --` when setpriv is on PATH. Without nft on PATH
 * it spawns nft directly, so the failure is the spawn's ENOENT (through
 * setpriv it would be an exit 127, taken for a crash and retried forever).
 */
export function nftMonitorSpawner(options: NftMonitorOptions): MonitorSpawner {
  const find = options.find ?? ((name: string) => findOnPath(name));
  let warned = false;
  return () => {
    // No nft: let the spawn itself fail with ENOENT (the watch then turns itself off).
    if (find('nft') === undefined) return spawnMonitor('nft', ['monitor']);
    const setpriv = find('setpriv');
    if (setpriv !== undefined) return spawnMonitor(setpriv, ['--pdeathsig', 'KILL', '--', 'nft', 'monitor']);
    if (!warned) {
      warned = true;
      options.warn('setpriv not found: a killed dockfw would leave nft monitor running (install util-linux)');
    }
    return spawnMonitor('nft', ['monitor']);
  };
}

function spawnMonitor(file: string, args: readonly string[]): MonitorProcess {
  const child = spawn(file, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });
  let spawnError: NodeJS.ErrnoException | undefined;
  const exited = new Promise<MonitorExit>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      spawnError = error;
      resolve({ code: null, signal: null, error, stderr });
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  const reader = createInterface({ input: child.stdout, crlfDelay: Infinity });
  async function* lines(): AsyncGenerator<string> {
    for await (const line of reader) yield line;
    await exited;
    if (spawnError) throw spawnError;
  }
  return {
    lines: lines(),
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/** A transaction's end: `# new generation N by process P (name)`. */
export interface Generation {
  readonly id: number;
  /** The process that committed, as the kernel sees it (its pid in the initial pid namespace). */
  readonly pid: number;
  readonly name: string;
}

const GENERATION = /^# new generation (\d+) by process (\d+) \((.*)\)$/;

export function parseGeneration(line: string): Generation | undefined {
  const match = GENERATION.exec(line.trim());
  if (!match) return undefined;
  return { id: Number(match[1]), pid: Number(match[2]), name: match[3] ?? '' };
}

/** A line that names a changed object (not a comment, not empty). */
export function isObjectLine(line: string): boolean {
  const text = line.trim();
  return text !== '' && !text.startsWith('#');
}

/** Chain names whose changes matter: dockfw's own and the ones its jump lives in. */
const PARENT_CHAINS: ReadonlySet<string> = new Set(OWNED_NAMES.parentChains);
const OWN_TABLE = OWNED_NAMES.table;
const OWN_CHAIN_PREFIX = OWNED_NAMES.chainPrefix;

const CHANGE = /^(add|create|insert|replace|delete|destroy|flush|rename|update|reset) (\S+)(?: (.*))?$/;

/**
 * Whether a monitor line may concern dockfw's rules. Changes to other tables'
 * or chains' contents (Docker's DNAT on every container start, say) are not;
 * a whole table going (flush ruleset deletes every table), or anything not
 * understood, is: better one read too many than a missed flush.
 */
export function concernsDockfw(line: string): boolean {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return false;
  const match = CHANGE.exec(text);
  if (!match) return true;
  const [, , object = '', rest = ''] = match;
  const [, table = '', name = ''] = rest.split(' ');
  if (table === OWN_TABLE) return true;
  switch (object) {
    case 'rule':
    case 'chain':
      return name.startsWith(OWN_CHAIN_PREFIX) || PARENT_CHAINS.has(name);
    case 'set':
    case 'element':
    case 'map':
    case 'flowtable':
    case 'counter':
    case 'quota':
    case 'limit':
    case 'ct':
    case 'secmark':
    case 'synproxy':
      return false;
    default:
      // table, ruleset, or an object kind this parser does not know.
      return true;
  }
}
