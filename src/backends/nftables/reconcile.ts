// One sync for the nftables backend: read dockfw's table, compare, and write one
// transaction only when the kernel differs: just the changed set elements when
// the table is otherwise intact, else the whole table.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import type { CommandRunner } from '../iptables/command.js';
import { hasDrift } from '../iptables/drift.js';
import type { FamilyReport } from '../iptables/reconcile.js';
import { applyNftPayload, NftApplyError } from './apply.js';
import { familyDrift, diffTable, needsWrite, type TableDrift } from './drift.js';
import { tableSpec, type TableSpec } from './elements.js';
import { SET_NAMES, setFamily, TABLE } from './names.js';
import { readTable } from './read.js';
import { renderElementPayload, renderTablePayload } from './render.js';

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

export class NftablesReconciler {
  private readonly lastDesired = new Map<Family, string>();

  constructor(private readonly options: NftablesReconcilerOptions) {}

  /** What differs between the kernel and `desired`, without writing (for a watcher's check). */
  async drift(desired: DesiredState): Promise<TableDrift> {
    return diffTable(this.spec(desired), await readTable(this.options.run));
  }

  private spec(desired: DesiredState): TableSpec {
    const spec = tableSpec(desired, this.options.dropRecords);
    return this.options.fastPath === true ? { ...spec, fastPath: true } : spec;
  }

  async reconcile(desired: DesiredState): Promise<FamilyReport[]> {
    const spec = this.spec(desired);
    const drift = diffTable(spec, await readTable(this.options.run));
    if (needsWrite(drift)) await this.write(drift, spec);
    return ([4, 6] as const).map((family) => {
      const part = familyPart(spec, family);
      // A write nobody asked for (Docker's side unchanged) is drift: someone else changed the table.
      const desiredChanged = this.lastDesired.get(family) !== part;
      this.lastDesired.set(family, part);
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
        if (!(error instanceof NftApplyError)) throw error;
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
      variant: 'nft',
      parent: `table ${TABLE}`,
      drift: familyView,
      written: hasDrift(familyView),
    };
  }
}
