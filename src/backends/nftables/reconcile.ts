// One sync for the nftables backend: read dockfw's table, compare, and write one
// transaction only when the kernel differs: just the changed set elements when
// the table is otherwise intact, else the whole table.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import type { CommandRunner } from '../command.js';
import { DesiredMemo } from '../desired-memo.js';
import { FirewallApplyError, hasDrift, type FamilyReport, type ReconcileOptions } from '../firewall.js';
import { absentFrom } from '../lists.js';
import { applyNftPayload } from './apply.js';
import { familyDrift, diffTable, needsWrite, type TableDrift } from './drift.js';
import { tableSpec, type TableSpec } from './elements.js';
import { BASE_CHAINS, SET_NAMES, setFamily, TABLE } from './names.js';
import { readTable } from './read.js';
import { regularChains, renderElementPayload, renderTablePayload, rulesOf } from './render.js';

export type WriteKind = 'table' | 'elements';

export interface NftablesReconcilerOptions {
  readonly run: CommandRunner;
  /** Called after each write, e.g. for metrics and tests. */
  readonly onWrite?: (kind: WriteKind, payload: string) => void;
  /** Size of each family's drop record set; 0: drops are not recorded. Default DEFAULT_DROP_RECORDS. */
  readonly dropRecords?: number;
  /**
   * Established connections skip the per-packet lookups. Only where revoked
   * connections are cut (conntrack works): otherwise every packet is judged.
   */
  readonly fastPath?: boolean;
}

/** The part of the table a family's report covers; the rules and interface sets go with IPv4. */
function familyPart(spec: TableSpec, family: Family): string {
  const sets = SET_NAMES.filter((name) => (setFamily(name) ?? 4) === family);
  const parts = sets.map((name) => [name, spec.sets.get(name)]);
  return JSON.stringify(family === 4 ? [spec.outsideConfigured, parts] : parts);
}

/** Everything of a spec but its set elements: what only a whole-table write changes. */
function shapeOf(spec: TableSpec): string {
  const chains = [...regularChains(spec), ...BASE_CHAINS.map((c) => c.name)];
  const rules = chains.map((chain) => rulesOf(chain, spec).map((rule) => rule.text));
  return JSON.stringify([chains, rules, [...spec.sets.keys()], spec.records ?? 0]);
}

/** The element changes from `known` (what the kernel holds) to `spec`, both of one shape. */
function elementDrift(spec: TableSpec, known: TableSpec): TableDrift {
  const changes = [];
  for (const [set, want] of spec.sets) {
    const have = known.sets.get(set) ?? [];
    if (want === have) continue;
    const change = { set, add: absentFrom(want, have), delete: absentFrom(have, want) };
    if (change.add.length > 0 || change.delete.length > 0) changes.push(change);
  }
  return { structural: [], rulesMissing: [], rulesUnexpected: [], reordered: false, changes };
}

export class NftablesReconciler {
  private readonly lastDesired = new DesiredMemo();
  /** The table the kernel held when the last sync ended, and its shape; undefined: unknown. */
  private known: { readonly spec: TableSpec; readonly shape: string } | undefined;

  constructor(private readonly options: NftablesReconcilerOptions) {}

  /** What differs between the kernel and `desired`, without writing (for a watcher's check). */
  async drift(desired: DesiredState): Promise<TableDrift> {
    return diffTable(this.spec(desired), await readTable(this.options.run));
  }

  private spec(desired: DesiredState): TableSpec {
    const spec = tableSpec(desired, this.options.dropRecords);
    return this.options.fastPath === true ? { ...spec, fastPath: true } : spec;
  }

  async reconcile(desired: DesiredState, options: ReconcileOptions = {}): Promise<FamilyReport[]> {
    const spec = this.spec(desired);
    const shape = shapeOf(spec);
    const known = this.known;
    // After container events alone, what the last sync left is what the kernel holds:
    // write the element difference without reading the table back. Anything
    // else, or a shape change, reads and compares. A failed write writes the
    // table whole (write()); any error forgets what is known.
    const trusted = options.trustLastSync === true && known !== undefined && known.shape === shape;
    const drift = trusted
      ? elementDrift(spec, known.spec)
      : diffTable(spec, await readTable(this.options.run));
    this.known = undefined;
    if (needsWrite(drift)) await this.write(drift, spec);
    this.known = { spec, shape };
    return ([4, 6] as const).map((family) => {
      const part = familyPart(spec, family);
      // A write nobody asked for (Docker's side unchanged) is drift: someone else changed the table.
      const desiredChanged = this.lastDesired.changed(family, part);
      this.lastDesired.remember(family, part);
      return { ...this.report(drift, family), desiredChanged };
    });
  }

  private async write(drift: TableDrift, spec: TableSpec): Promise<void> {
    if (drift.structural.length === 0) {
      const payload = renderElementPayload(drift.changes);
      try {
        await applyNftPayload(this.options.run, payload);
        this.options.onWrite?.('elements', payload);
        return;
      } catch (error) {
        // Someone changed the table between our read and write: write it whole.
        if (!(error instanceof FirewallApplyError)) throw error;
      }
    }
    const payload = renderTablePayload(spec);
    await applyNftPayload(this.options.run, payload);
    this.options.onWrite?.('table', payload);
  }

  private report(drift: TableDrift, family: Family): FamilyReport {
    const familyView = familyDrift(drift, family);
    return {
      family,
      placement: { kind: 'nftables', table: TABLE },
      drift: familyView,
      written: hasDrift(familyView),
    };
  }
}
