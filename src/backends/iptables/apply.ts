// The only writer to the kernel: one `iptables-restore --noflush -w`
// transaction per family. Either the whole payload applies or nothing does.
import type { Family } from '../../docker/snapshot.js';
import { CommandError, type CommandRunner } from './command.js';
import { restoreCommand, type Variant } from './read.js';

export class ApplyError extends Error {
  constructor(
    message: string,
    readonly family: Family,
    readonly variant: Variant,
    /** The payload line iptables-restore rejected, when it said which. */
    readonly offendingLine: string | undefined,
  ) {
    super(message);
    this.name = 'ApplyError';
  }
}

/** Line number iptables-restore blames: legacy "line N failed", nft "Error occurred at line: N". */
export function failedLineNumber(stderr: string): number | undefined {
  const match = /line:? (\d+)(?: failed)?/i.exec(stderr);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export async function applyPayload(
  run: CommandRunner,
  family: Family,
  variant: Variant,
  payload: string,
): Promise<void> {
  try {
    await run(restoreCommand(family, variant), ['--noflush', '-w'], payload);
  } catch (error) {
    if (!(error instanceof CommandError) || error.missing) throw error;
    const lineNumber = failedLineNumber(error.stderr);
    const offendingLine = lineNumber === undefined ? undefined : payload.split('\n')[lineNumber - 1];
    const where = offendingLine === undefined ? '' : ` at line ${lineNumber}: ${offendingLine}`;
    throw new ApplyError(`${error.message}${where}`, family, variant, offendingLine);
  }
}
