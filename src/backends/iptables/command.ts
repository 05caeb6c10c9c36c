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

export const runCommand: CommandRunner = async (file, args, input) => {
  const result = await execa(file, [...args], {
    reject: false,
    timeout: TIMEOUT_MS,
    stripFinalNewline: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  if (!result.failed) return { stdout: result.stdout };
  const shown = [file, ...args].join(' ');
  if (result.code === 'ENOENT') {
    throw new CommandError(`${file} not found: install iptables (or put it on PATH)`, file, args, '', true);
  }
  if (result.timedOut) {
    throw new CommandError(
      `${shown} timed out after ${TIMEOUT_MS / 1000} s`,
      file,
      args,
      result.stderr,
      false,
    );
  }
  const detail = result.stderr.trim() || result.shortMessage;
  throw new CommandError(
    `${shown} failed (exit ${result.exitCode ?? '?'}): ${detail}`,
    file,
    args,
    result.stderr,
    false,
  );
};
