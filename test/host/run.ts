import { execa } from 'execa';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string>;
  input?: string;
  cwd?: string;
  /** Throw on a non-zero exit (default true). */
  reject?: boolean;
}

/** Runs a program with an argument array (no shell) and returns its text output. */
export async function run(file: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const result = await execa(file, args, {
    reject: false,
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.input === undefined ? {} : { input: options.input }),
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const outcome = { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
  if ((options.reject ?? true) && outcome.exitCode !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (exit ${outcome.exitCode}): ${outcome.stderr.trim()}`);
  }
  return outcome;
}
