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

/** A runner for one tool; `missingHint` says what to install when it is not on PATH. */
export function commandRunner(missingHint: string): CommandRunner {
  let largestAnswer = 0;
  return async (file, args, input) => {
    const timeout = timeoutFor(Math.max(input?.length ?? 0, largestAnswer));
    const child = execa(file, [...args], {
      reject: false,
      timeout,
      stripFinalNewline: false,
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    });
    // Before it can commit anything: the pid is known once spawn returns.
    if (input !== undefined && child.pid !== undefined)
      for (const listener of writeListeners) listener(child.pid);
    const result = await child;
    if (!result.failed) {
      largestAnswer = Math.max(largestAnswer, result.stdout.length);
      return { stdout: result.stdout };
    }
    const shown = [file, ...args].join(' ');
    if (result.code === 'ENOENT') {
      throw new CommandError(`${file} not found: ${missingHint}`, file, args, '', true);
    }
    const message = result.timedOut
      ? `${shown} timed out after ${timeout / 1000} s`
      : `${shown} failed (exit ${result.exitCode ?? '?'}): ${result.stderr.trim() || result.shortMessage}`;
    throw new CommandError(message, file, args, result.stderr, false, result.timedOut);
  };
}
