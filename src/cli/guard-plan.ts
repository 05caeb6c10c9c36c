// What `dockfw guard` writes (pure): the fail-closed layout of an engine with
// no containers, rendered by the same renderers a sync uses, and only where
// dockfw has no rules yet (guard must never weaken rules a dockfw wrote).
import { CHAIN_ENTRY, DOCKER_USER, OWNED_PREFIX } from '../backends/iptables/chains.js';
import { jumpPositions, type FilterTable, type Variant } from '../backends/iptables/read.js';
import { renderSyncPayload } from '../backends/iptables/render.js';
import { tableSpec } from '../backends/nftables/elements.js';
import type { TableSeen } from '../backends/nftables/read.js';
import { renderTablePayload } from '../backends/nftables/render.js';
import type { Config } from '../config/config.js';
import type { Family } from '../docker/snapshot.js';
import { desiredState, type DesiredState } from '../policy/desired.js';

export type GuardPlan =
  | { readonly kind: 'install'; readonly payload: string }
  /** dockfw's rules are there already (guard run twice, or dockfw running): leave them alone. */
  | { readonly kind: 'already-guarded'; readonly holding: readonly string[] };

/**
 * What a sync would want for an engine without containers: the catch-all only,
 * on every interface (no bridge is known before the engine runs).
 */
export function emptyDesired(config: Config): DesiredState {
  return { ...desiredState({ containers: [], bridges: [] }, config), bridgesUnknown: true };
}

/**
 * The iptables layout for one family: dockfw's chains and the jump first in
 * DOCKER-USER, which is created when missing (dockerd keeps an existing
 * DOCKER-USER and its rules at start, and adds its FORWARD jump to it).
 */
export function iptablesGuardPlan(empty: DesiredState, family: Family, table: FilterTable): GuardPlan {
  const holding = [...table.chains]
    .filter(([chain, rules]) => chain.startsWith(OWNED_PREFIX) && rules.length > 0)
    .map(([chain]) => chain);
  if (holding.length > 0) return { kind: 'already-guarded', holding };
  const positions = jumpPositions(table, DOCKER_USER, CHAIN_ENTRY);
  const payload = renderSyncPayload(empty, family, { parent: DOCKER_USER, positions });
  if (table.chains.has(DOCKER_USER)) return { kind: 'install', payload };
  // Declaring a chain that exists would flush it: only a missing DOCKER-USER is declared.
  return { kind: 'install', payload: payload.replace(/^\*filter\n/, `*filter\n:${DOCKER_USER} - [0:0]\n`) };
}

/** The nftables layout: table inet dockfw with empty container sets, so only the catch-all judges. */
export function nftablesGuardPlan(empty: DesiredState, seen: TableSeen | undefined): GuardPlan {
  const holding = (seen ? [...seen.chains] : [])
    .filter(([, chain]) => chain.rules.length > 0)
    .map(([name]) => `inet dockfw ${name}`);
  if (holding.length > 0) return { kind: 'already-guarded', holding };
  return { kind: 'install', payload: renderTablePayload(tableSpec(empty)) };
}

/** The variant `iptables --version` names: `(nf_tables)` or `(legacy)`; before 1.8 only legacy existed. */
export function variantFromVersion(output: string): Variant {
  return /\(nf_tables\)/.test(output) ? 'nft' : 'legacy';
}
