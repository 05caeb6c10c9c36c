// Removing everything dockfw owns: its jumps and its chains, in every variant
// and family where they exist, then its ipsets. Nothing else is touched.
import type { Family } from '../../docker/snapshot.js';
import { applyPayload } from './apply.js';
import { CHAIN_ENTRY, CHAIN_PRE, DOCKER_USER, FORWARD, OWNED_PREFIX, PREROUTING } from './chains.js';
import { CommandError, type CommandRunner } from '../command.js';
import { procLegacyTableNames, variantsInUse } from './detect.js';
import { jumpPositions, readFilterTable, type FilterTable, type Variant } from './read.js';
import { destroySets } from './ipset.js';
import { destroyRecordSets } from './records.js';
import { allSetNames } from './sets.js';
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

/** The same for the mangle table: the PREROUTING jump and the DOCKFW-PRE* chains. */
export function manglePayloads(table: FilterTable): string[] {
  const owned = [...table.chains.keys()].filter((chain) => chain.startsWith(OWNED_PREFIX));
  const positions = jumpPositions(table, PREROUTING, CHAIN_PRE);
  if (owned.length === 0 && positions.length === 0) return [];
  return [
    renderUninstallPayload(
      { parent: PREROUTING, jumpPositions: positions, ownedChains: owned },
      'mangle',
      CHAIN_PRE,
    ),
  ];
}

/** Both tables' payloads for one variant and family: mangle, then filter. */
export async function uninstallVariant(
  run: CommandRunner,
  family: Family,
  variant: Variant,
  filter: FilterTable,
): Promise<{ readonly removed: boolean; readonly chains: readonly string[] }> {
  const mangle = await readFilterTable(run, family, variant, 'mangle');
  const payloads = [...manglePayloads(mangle), ...uninstallPayloads(filter)];
  for (const payload of payloads) await applyPayload(run, family, variant, payload);
  const chains = [...mangle.chains.keys(), ...filter.chains.keys()].filter((chain) =>
    chain.startsWith(OWNED_PREFIX),
  );
  return { removed: payloads.length > 0, chains };
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
    for (const variant of await variantsInUse(legacyTableNames, family)) {
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
      const removed = await uninstallVariant(deps.run, family, variant, table);
      if (removed.removed) reports.push({ family, variant, removedChains: removed.chains });
    }
  }
  if (!anyVariantRead && firstMissing) throw firstMissing;
  // Last: a set cannot be destroyed while a rule references it. Only dockfw's own names.
  await destroySets(deps.run, allSetNames());
  await destroyRecordSets(deps.run);
  return reports;
}
