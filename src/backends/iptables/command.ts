// The one place that runs the iptables tools. Argument arrays, never a shell;
// a timeout so a stuck xtables lock cannot stall the sidecar forever.
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
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const TIMEOUT_MS = 30_000;

/** A runner for one tool; `missingHint` says what to install when it is not on PATH. */
export function commandRunner(missingHint: string): CommandRunner {
  return async (file, args, input) => {
    const result = await execa(file, [...args], {
      reject: false,
      timeout: TIMEOUT_MS,
      stripFinalNewline: false,
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
    });
    if (!result.failed) return { stdout: result.stdout };
    const shown = [file, ...args].join(' ');
    if (result.code === 'ENOENT') {
      throw new CommandError(`${file} not found: ${missingHint}`, file, args, '', true);
    }
    const message = result.timedOut
      ? `${shown} timed out after ${TIMEOUT_MS / 1000} s`
      : `${shown} failed (exit ${result.exitCode ?? '?'}): ${result.stderr.trim() || result.shortMessage}`;
    throw new CommandError(message, file, args, result.stderr, false);
  };
}

export const runCommand: CommandRunner = commandRunner('install iptables (or put it on PATH)');
