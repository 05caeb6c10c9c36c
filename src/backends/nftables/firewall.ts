// The nftables backend behind the neutral port: reconcile, plan, guard and
// uninstall of the one table dockfw owns. Its drops are counted by the drop
// records, not per rule: it reports no rule counters.
import type { DesiredState } from '../../policy/desired.js';
import type {
  FamilyCounters,
  FamilyReport,
  Firewall,
  GuardOutcome,
  ReconcileOptions,
  Removal,
  RenderOptions,
} from '../firewall.js';
import { applyNftPayload } from './apply.js';
import { tableSpec } from './elements.js';
import { nftablesGuardPlan } from './guard.js';
import { TABLE } from './names.js';
import { readTable } from './read.js';
import { NftablesReconciler, type NftablesReconcilerOptions } from './reconcile.js';
import { renderTablePayload } from './render.js';
import { uninstallNftables } from './uninstall.js';

const WHERE = `nftables table ${TABLE}`;

export class NftablesFirewall implements Firewall {
  readonly name = 'nftables';
  private readonly reconciler: NftablesReconciler;

  constructor(private readonly options: NftablesReconcilerOptions) {
    this.reconciler = new NftablesReconciler(options);
  }

  reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<FamilyReport[]> {
    return this.reconciler.reconcile(desired, options);
  }

  /** One `nft -f` payload serves both families: `families` does not split it. */
  render(desired: DesiredState, options: RenderOptions): string {
    const spec = tableSpec(desired, options.dropRecords);
    return renderTablePayload(options.fastPath === true ? { ...spec, fastPath: true } : spec);
  }

  async guard(empty: DesiredState): Promise<GuardOutcome[]> {
    const plan = nftablesGuardPlan(empty, await readTable(this.options.run));
    if (plan.kind === 'install') await applyNftPayload(this.options.run, plan.payload);
    return [{ where: WHERE, plan }];
  }

  async uninstall(): Promise<Removal[]> {
    const { removed } = await uninstallNftables(this.options.run);
    return removed ? [{ where: WHERE, removed: [`table ${TABLE}`], text: `removed ${WHERE}` }] : [];
  }

  counters(): Promise<FamilyCounters | undefined> {
    return Promise.resolve(undefined);
  }
}
