// What `dockfw guard` writes in nftables (pure): table inet dockfw with empty
// container sets, so only the catch-all judges; nothing where the table holds rules.
import type { DesiredState } from '../../policy/desired.js';
import type { GuardPlan } from '../firewall.js';
import { tableSpec } from './elements.js';
import { TABLE } from './names.js';
import type { TableSeen } from './read.js';
import { renderTablePayload } from './render.js';

export function nftablesGuardPlan(empty: DesiredState, seen: TableSeen | undefined): GuardPlan {
  const holding = (seen ? [...seen.chains] : [])
    .filter(([, chain]) => chain.rules.length > 0)
    .map(([name]) => `${TABLE} ${name}`);
  if (holding.length > 0) return { kind: 'already-guarded', holding };
  return { kind: 'install', payload: renderTablePayload(tableSpec(empty)) };
}
