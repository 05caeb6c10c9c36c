// The only writer to the kernel: one `nft -f -` transaction. Either the whole
// payload applies or nothing does.
import { CommandError, type CommandRunner } from '../command.js';
import { blamedLine, FirewallApplyError, failedLineNumber } from '../firewall.js';

export { failedLineNumber };

export async function applyNftPayload(run: CommandRunner, payload: string): Promise<void> {
  try {
    await run('nft', ['-f', '-'], payload);
  } catch (error) {
    if (!(error instanceof CommandError) || error.missing) throw error;
    const blamed = blamedLine(payload, error.stderr);
    const firstError = error.stderr.split('\n').find((l) => l.includes('Error:')) ?? error.message;
    const where = blamed === undefined ? '' : ` at line ${blamed.number}: ${blamed.line.trim()}`;
    throw new FirewallApplyError(
      `nft rejected the rules: ${firstError.trim()}${where}`,
      'nftables',
      undefined,
      blamed?.line,
    );
  }
}
