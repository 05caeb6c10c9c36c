// The one place that runs the firewall tools. Argument arrays, never a shell;
// a timeout so a stuck xtables lock or netlink call cannot stall the sidecar forever.
import { execa } from 'execa';

export interface CommandResult {
  readonly stdout: string;
}

/** Runs a program; rejects with CommandError unless it exits 0. */
export type CommandRunner = (file: string, args: readonly string[], input?: string) => Promise<CommandResult>;

export class CommandError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly args: readonly string[],
    readonly stderr: string,
    /** True when the program is not installed. */
    readonly missing: boolean,
    /** True when the program was stopped for taking longer than its timeout. */
    readonly timedOut = false,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const TIMEOUT_MS = 30_000;
/**
 * Added per MB of the text a call moves (its input, or the largest answer this
 * runner has read so far): a whole table of 20,000 containers is 32 MB to
 * write and 62 MB to list, which takes nft about 24 s and 18 s on an idle
 * host. Only a big host waits longer for a stuck tool.
 */
const TIMEOUT_MS_PER_MB = 1_000;

function timeoutFor(bytes: number): number {
  return TIMEOUT_MS + Math.floor(bytes / 1_048_576) * TIMEOUT_MS_PER_MB;
}

/** Told the pid of a program started to write (given input on stdin: a restore, `nft -f -`). */
export type WriteSpawnListener = (pid: number) => void;

const writeListeners = new Set<WriteSpawnListener>();

/**
 * Tells `listener` the pid of every write child the runners start from now on
 * (the ruleset watch uses it to know dockfw's own commits by the process that
 * made them); returns the unsubscribe.
 */
export function onWriteSpawned(listener: WriteSpawnListener): () => void {
  writeListeners.add(listener);
  return () => writeListeners.delete(listener);
}

export interface RunnerOptions {
  /**
   * Programs whose writes (calls with input) are kept warm: after each, one
   * started copy of the same command waits on its stdin, so the next same write
   * hands its payload to a running process: no fork of this (large) process and
   * no tool start on an event's path. Only for tools that hold nothing while
   * they wait: `nft -f -` reads its whole input before it reads the ruleset or
   * opens a transaction, `ipset restore` acts on each line as it reads it. Never
   * `iptables-restore`, which may take the xtables lock before it reads.
   */
  readonly warmWrites?: readonly string[];
}

/**
 * The tools' environment: this process's as it is now, without glibc's allocator
 * settings (`MALLOC_*`, which the image sets for this long-lived process): a tool
 * that runs for a moment keeps glibc's defaults.
 */
function toolOptions() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MALLOC_')));
  return { reject: false, stripFinalNewline: false, extendEnv: false, env } as const;
}

type Started = ReturnType<typeof startIdle>;
/** What a child's pipes (sockets) have; typed streams do not show it. */
interface Ref {
  ref(): void;
  unref(): void;
}

/** A write started before its payload, waiting on stdin; `ended` once it exits. */
function startIdle(file: string, args: readonly string[]) {
  const child = execa(file, [...args], { ...toolOptions(), stdin: 'pipe' });
  const started = { child, ended: false };
  void child.then(() => (started.ended = true));
  // A waiting copy must not keep a finished process alive (its input ends, empty, when it exits).
  keepsAlive(child, false);
  return started;
}

/** Whether `child` and its pipes hold this process's event loop open. */
function keepsAlive(child: Started['child'], hold: boolean): void {
  for (const handle of [child, child.stdin, child.stdout, child.stderr] as (Partial<Ref> | null)[])
    if (hold) handle?.ref?.();
    else handle?.unref?.();
}

/** A runner for one tool; `missingHint` says what to install when it is not on PATH. */
export function commandRunner(missingHint: string, options: RunnerOptions = {}): CommandRunner {
  let largestAnswer = 0;
  const spares = new Map<string, Started>();
  /** Starts `file args`, or takes its waiting copy while that is alive; `go` hands it the input. */
  const start = (file: string, args: readonly string[], input: string | undefined, timeout: number) => {
    const key = [file, ...args].join('\0');
    const spare = input === undefined ? undefined : spares.get(key);
    if (spare !== undefined) spares.delete(key);
    // Its exit code is set on `exit`; its promise settles later (it waits for the pipes too).
    // One killed but not yet reaped still fails the write it gets: a failed write, as any.
    const alive =
      spare !== undefined && !spare.ended && spare.child.exitCode === null && spare.child.signalCode === null;
    if (!alive) {
      const stdin = input === undefined ? { stdin: 'ignore' as const } : { input };
      const child = execa(file, [...args], { ...toolOptions(), timeout, ...stdin });
      return { child, key, go: () => undefined, expired: () => false };
    }
    const { child } = spare;
    keepsAlive(child, true);
    let expired = false;
    const go = () => {
      const timer = setTimeout(() => {
        expired = true;
        child.kill();
      }, timeout);
      void child.then(() => clearTimeout(timer));
      child.stdin.end(input);
    };
    return { child, key, go, expired: () => expired };
  };
  return async (file, args, input) => {
    const timeout = timeoutFor(Math.max(input?.length ?? 0, largestAnswer));
    const { child, key, go, expired } = start(file, args, input, timeout);
    // Before it can commit anything: the pid is known once spawn returns.
    if (input !== undefined && child.pid !== undefined)
      for (const listener of writeListeners) listener(child.pid);
    go();
    const result = await child;
    // The next write's copy, started once this caller has gone on (a fork stalls this thread).
    if (input !== undefined && options.warmWrites?.includes(file) === true && result.code !== 'ENOENT')
      setImmediate(() => {
        if (!spares.has(key)) spares.set(key, startIdle(file, args));
      });
    if (!result.failed) {
      largestAnswer = Math.max(largestAnswer, result.stdout.length);
      return { stdout: result.stdout };
    }
    const shown = [file, ...args].join(' ');
    if (result.code === 'ENOENT') {
      throw new CommandError(`${file} not found: ${missingHint}`, file, args, '', true);
    }
    const timedOut = result.timedOut || expired();
    const message = timedOut
      ? `${shown} timed out after ${timeout / 1000} s`
      : `${shown} failed (exit ${result.exitCode ?? '?'}): ${result.stderr.trim() || result.shortMessage}`;
    throw new CommandError(message, file, args, result.stderr, false, timedOut);
  };
}
