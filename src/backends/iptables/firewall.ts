// The iptables backend behind the neutral port: reconcile, plan, guard,
// uninstall and counters, each with the iptables tools.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import { CommandError } from '../command.js';
import type {
  FamilyCounters,
  FamilyReport,
  Firewall,
  GuardOutcome,
  Placement,
  Removal,
  RenderOptions,
  ReconcileOptions,
} from '../firewall.js';
import { applyPayload } from './apply.js';
import { applySetBatch, listSetNames } from './ipset.js';
import { familySets, renderSetsFull } from './sets.js';
import { DOCKER_USER, PREROUTING } from './chains.js';
import { readFamilyCounters } from './counters.js';
import { iptablesGuardPlan, variantFromVersion } from './guard.js';
import { readFilterTable, type Variant } from './read.js';
import { IptablesReconciler, type IptablesReconcilerOptions } from './reconcile.js';
import { recordSetCreateArgs } from './records.js';
import { renderPreroutingPayload, renderSyncPayload } from './render.js';
import { uninstall } from './uninstall.js';

const FAMILY_NAMES: Readonly<Record<Family, string>> = { 4: 'iptables', 6: 'ip6tables' };

export interface IptablesFirewallOptions extends IptablesReconcilerOptions {
  /** The variant `dockfw guard` writes with; default: the one `iptables --version` names. */
  readonly guardVariant?: Variant;
  readonly legacyTableNames?: (family: Family) => Promise<string>;
}

/**
 * Payload text for `families`, as a first sync would apply them (no jump yet).
 * `dropRecords` > 0: with the drop rules, which need the family's record ipset
 * first (named in a comment line, as `ipset` takes it).
 */
export function renderIptablesPlan(desired: DesiredState, options: RenderOptions): string {
  const { families, dropRecords } = options;
  if (options.sets === true) return renderSetBatches(desired, families);
  const render = { records: dropRecords > 0, fastPath: options.fastPath === true };
  return families
    .map((family) => {
      const needs =
        dropRecords > 0 ? `# first: ipset ${recordSetCreateArgs(family, dropRecords).join(' ')}\n` : '';
      const payload =
        needs +
        renderPreroutingPayload(desired, family, { parent: PREROUTING, positions: [] }, render) +
        renderSyncPayload(desired, family, { parent: DOCKER_USER, positions: [] }, render);
      return families.length > 1
        ? `# IPv${family}: ${FAMILY_NAMES[family]}-restore --noflush\n${payload}`
        : payload;
    })
    .join('');
}

/**
 * The `ipset restore` batch per family that fills the verdict sets the rules
 * look up (to load before the payloads), as the first sync writes it.
 */
function renderSetBatches(desired: DesiredState, families: readonly Family[]): string {
  return families
    .map((family) => {
      const batch = renderSetsFull(family, familySets(desired, family), new Set(), new Set());
      return families.length > 1 ? `# IPv${family}: ipset restore\n${batch}` : batch;
    })
    .join('');
}

export class IptablesFirewall implements Firewall {
  readonly name = 'iptables';
  private readonly reconciler: IptablesReconciler;

  constructor(private readonly options: IptablesFirewallOptions) {
    this.reconciler = new IptablesReconciler(options);
  }

  reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<FamilyReport[]> {
    return this.reconciler.reconcile(desired, options);
  }

  render(desired: DesiredState, options: RenderOptions): string {
    return renderIptablesPlan(desired, options);
  }

  async guard(empty: DesiredState): Promise<GuardOutcome[]> {
    const { run } = this.options;
    const variant =
      this.options.guardVariant ?? variantFromVersion((await run('iptables', ['--version'])).stdout);
    const outcomes: GuardOutcome[] = [];
    for (const family of [4, 6] as const) {
      const where = `${FAMILY_NAMES[family]}-${variant}`;
      let table;
      try {
        table = await readFilterTable(run, family, variant);
      } catch (error) {
        // A host without ip6tables has no IPv6 rules for Docker either.
        if (family === 6 && error instanceof CommandError && error.missing) {
          outcomes.push({ where, plan: undefined });
          continue;
        }
        throw error;
      }
      const plan = iptablesGuardPlan(empty, family, table);
      if (plan.kind === 'install') {
        // The rules look the verdicts up in dockfw's sets: empty ones first, as a sync without
        // containers leaves them (sets that outlived the chains may hold verdicts of before).
        const names = await listSetNames(run);
        const leftovers = new Set([...names].filter((n) => n.startsWith('dockfw-') && n.endsWith('-t')));
        await applySetBatch(run, family, renderSetsFull(family, familySets(empty, family), names, leftovers));
        await applyPayload(run, family, variant, plan.payload);
      }
      outcomes.push({ where, plan });
    }
    return outcomes;
  }

  async uninstall(): Promise<Removal[]> {
    const { run, legacyTableNames } = this.options;
    const reports = await uninstall({ run, ...(legacyTableNames ? { legacyTableNames } : {}) });
    return reports.map((report) => {
      const where = `${FAMILY_NAMES[report.family]}-${report.variant}`;
      const removed = report.removedChains.length > 0 ? report.removedChains : ['jump'];
      return { where, removed, text: `removed from ${where}: ${removed.join(', ')}` };
    });
  }

  counters(family: Family, placement: Placement): Promise<FamilyCounters | undefined> {
    if (placement.kind !== 'iptables') return Promise.resolve(undefined);
    return readFamilyCounters(this.options.run, family, placement.variant);
  }
}
