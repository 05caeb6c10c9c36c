// Removing dockfw's nftables table, and nothing else.
import type { CommandRunner } from '../command.js';
import { applyNftPayload } from './apply.js';
import { TABLE } from './names.js';
import { readTable } from './read.js';
import { renderUninstallPayload } from './render.js';

/** Deletes `table inet dockfw`; resolves with whether there was one. */
export async function uninstallNftables(run: CommandRunner): Promise<{ removed: boolean; table: string }> {
  if ((await readTable(run)) === undefined) return { removed: false, table: TABLE };
  await applyNftPayload(run, renderUninstallPayload());
  return { removed: true, table: TABLE };
}
