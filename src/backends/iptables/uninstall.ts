// Removing everything dockfw owns: its jumps and its chains, in every variant
// and family where they exist. Nothing else is touched.
import type { Family } from '../../docker/snapshot.js';
import { applyPayload } from './apply.js';
import { CHAIN_ENTRY, DOCKER_USER, FORWARD, OWNED_PREFIX } from './chains.js';
import { CommandError, type CommandRunner } from './command.js';
import { procLegacyTableNames } from './detect.js';
import { jumpPositions, readFilterTable, type FilterTable, type Variant } from './read.js';
import { renderUninstallPayload } from './render.js';

/** Payloads that remove dockfw from one table, in order; empty when nothing is there. */
export function uninstallPayloads(table: FilterTable): string[] {
  const owned = [...table.chains.keys()].filter((chain) => chain.startsWith(OWNED_PREFIX));
  // The jump may sit in DOCKER-USER or (ip6tables on old engines) FORWARD, or both.
  const parents = [DOCKER_USER, FORWARD]
    .map((parent) => ({ parent, positions: jumpPositions(table, parent, CHAIN_ENTRY) }))
    .filter((p) => p.positions.length > 0);
  if (owned.length === 0 && parents.length === 0) return [];
  const [main = { parent: DOCKER_USER, positions: [] }, ...others] = parents;
  return [
    ...others.map((p) =>
      renderUninstallPayload({ parent: p.parent, jumpPositions: p.positions, ownedChains: [] }),
    ),
    renderUninstallPayload({ parent: main.parent, jumpPositions: main.positions, ownedChains: owned }),
  ];
}

export interface UninstallReport {
  readonly family: Family;
  readonly variant: Variant;
  readonly removedChains: readonly string[];
}

export interface UninstallDeps {
  readonly run: CommandRunner;
  readonly legacyTableNames?: (family: Family) => Promise<string>;
}

export async function uninstall(deps: UninstallDeps): Promise<UninstallReport[]> {
  const legacyTableNames = deps.legacyTableNames ?? procLegacyTableNames;
  const reports: UninstallReport[] = [];
  let anyVariantRead = false;
  let firstMissing: CommandError | undefined;
  for (const family of [4, 6] as const) {
    const legacyInUse = (await legacyTableNames(family)).trim() !== '';
    const variants: Variant[] = legacyInUse ? ['nft', 'legacy'] : ['nft'];
    for (const variant of variants) {
      let table: FilterTable;
      try {
        table = await readFilterTable(deps.run, family, variant);
      } catch (error) {
        if (error instanceof CommandError && error.missing) {
          firstMissing ??= error;
          continue;
        }
        throw error;
      }
      anyVariantRead = true;
      const payloads = uninstallPayloads(table);
      for (const payload of payloads) await applyPayload(deps.run, family, variant, payload);
      if (payloads.length > 0) {
        const removedChains = [...table.chains.keys()].filter((chain) => chain.startsWith(OWNED_PREFIX));
        reports.push({ family, variant, removedChains });
      }
    }
  }
  if (!anyVariantRead && firstMissing) throw firstMissing;
  return reports;
}
