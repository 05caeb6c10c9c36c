// What `dockfw guard` writes in iptables (pure): the fail-closed layout of an
// engine with no containers, rendered by the same renderer a sync uses, and only
// where dockfw has no rules yet (guard must never weaken rules a dockfw wrote).
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import type { GuardPlan } from '../firewall.js';
import { CHAIN_ENTRY, DOCKER_USER, OWNED_PREFIX } from './chains.js';
import { jumpPositions, type FilterTable, type Variant } from './read.js';
import { renderSyncPayload } from './render.js';

/**
 * The layout for one family: dockfw's chains and the jump first in
 * DOCKER-USER, which is created when missing (dockerd keeps an existing
 * DOCKER-USER and its rules at start, and adds its FORWARD jump to it).
 */
export function iptablesGuardPlan(empty: DesiredState, family: Family, table: FilterTable): GuardPlan {
  const holding = [...table.chains]
    .filter(([chain, rules]) => chain.startsWith(OWNED_PREFIX) && rules.length > 0)
    .map(([chain]) => chain);
  if (holding.length > 0) return { kind: 'already-guarded', holding };
  const positions = jumpPositions(table, DOCKER_USER, CHAIN_ENTRY);
  const declareParent = !table.chains.has(DOCKER_USER);
  return {
    kind: 'install',
    payload: renderSyncPayload(empty, family, { parent: DOCKER_USER, positions }, { declareParent }),
  };
}

/** The variant `iptables --version` names: `(nf_tables)` or `(legacy)`; before 1.8 only legacy existed. */
export function variantFromVersion(output: string): Variant {
  return /\(nf_tables\)/.test(output) ? 'nft' : 'legacy';
}
