// The only writer to the kernel: one `iptables-restore --noflush -w`
// transaction per family. Either the whole payload applies or nothing does.
import type { Family } from '../../docker/snapshot.js';
import { CommandError, type CommandRunner } from '../command.js';
import { blamedLine, FirewallApplyError, failedLineNumber } from '../firewall.js';
import { restoreCommand, type Variant } from './read.js';

/** The one apply error of every backend, under the name this backend's callers knew. */
export { FirewallApplyError as ApplyError, failedLineNumber };

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
    const blamed = blamedLine(payload, error.stderr);
    const where = blamed === undefined ? '' : ` at line ${blamed.number}: ${blamed.line}`;
    throw new FirewallApplyError(`${error.message}${where}`, 'iptables', family, blamed?.line, variant);
  }
}
