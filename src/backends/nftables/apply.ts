// The only writer to the kernel: one `nft -f -` transaction. Either the whole
// payload applies or nothing does.
import { CommandError, type CommandRunner } from '../iptables/command.js';

export class NftApplyError extends Error {
  override readonly name = 'NftApplyError';
  constructor(
    message: string,
    /** The payload line nft rejected, when it said which. */
    readonly offendingLine: string | undefined,
  ) {
    super(message);
  }
}

/** nft blames `/dev/stdin:LINE:COLUMNS: Error: …`. */
export function failedLineNumber(stderr: string): number | undefined {
  const match = /\/dev\/stdin:(\d+):/.exec(stderr);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export async function applyNftPayload(run: CommandRunner, payload: string): Promise<void> {
  try {
    await run('nft', ['-f', '-'], payload);
  } catch (error) {
    if (!(error instanceof CommandError) || error.missing) throw error;
    const lineNumber = failedLineNumber(error.stderr);
    const offendingLine = lineNumber === undefined ? undefined : payload.split('\n')[lineNumber - 1];
    const firstError = error.stderr.split('\n').find((l) => l.includes('Error:')) ?? error.message;
    const where = offendingLine === undefined ? '' : ` at line ${lineNumber}: ${offendingLine.trim()}`;
    throw new NftApplyError(`nft rejected the rules: ${firstError.trim()}${where}`, offendingLine);
  }
}
