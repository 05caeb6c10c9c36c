// One sync for the nftables backend: read dockfw's table, compare, and write one
// transaction only when the kernel differs: just the changed set elements when
// the table is otherwise intact, else the whole table.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import type { CommandRunner } from '../command.js';
import { FirewallApplyError, hasDrift, type FamilyReport, type ReconcileOptions } from '../firewall.js';
import { applyNftPayload } from './apply.js';
import { baseChainAsDeclared, familyDrift, diffTable, needsWrite, type TableDrift } from './drift.js';
import { tableSpec, type TableSpec } from './elements.js';
import { BASE_CHAINS, setFamily, TABLE } from './names.js';
import { readChainsAndSets, readTable } from './read.js';
import { absentFrom } from '../lists.js';
import {
  regularChains,
  renderElementPayload,
  renderTablePayload,
  rulesOf,
  type ElementChanges,
} from './render.js';
import { changesBetween, Wanted } from './wanted.js';

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

/** Everything of a spec but its set elements: what only a whole-table write changes. */
function shapeOf(spec: TableSpec): string {
  const chains = [...regularChains(spec), ...BASE_CHAINS.map((c) => c.name)];
  const rules = chains.map((chain) => rulesOf(chain, spec).map((rule) => rule.text));
  return JSON.stringify([chains, rules, [...spec.sets.keys()], spec.records ?? 0]);
}

function elementDrift(changes: readonly ElementChanges[]): TableDrift {
  return { structural: [], rulesMissing: [], rulesUnexpected: [], reordered: false, changes };
}

/** Whether the changes touch a family's part of the table (the interface sets go with IPv4). */
/** Every element `found` adds or deletes is one `asked` adds or deletes in the same set. */
function within(found: readonly ElementChanges[], asked: readonly ElementChanges[]): boolean {
  const key = (set: string, verb: string, element: string) => `${set} ${verb} ${element}`;
  const allowed = new Set(
    asked.flatMap((c) => [
      ...c.add.map((e) => key(c.set, '+', e)),
      ...c.delete.map((e) => key(c.set, '-', e)),
    ]),
  );
  return found.every(
    (c) =>
      c.add.every((e) => allowed.has(key(c.set, '+', e))) &&
      c.delete.every((e) => allowed.has(key(c.set, '-', e))),
  );
}

function touches(changes: readonly ElementChanges[], family: Family): boolean {
  return changes.some((c) => (setFamily(c.set) ?? 4) === family);
}

export class NftablesReconciler {
  /** What the last finished sync asked for (and left in the kernel); undefined before the first. */
  private wanted: { readonly want: Wanted; readonly shape: string } | undefined;
  /** The kernel holds `wanted`: false until a sync finishes, and after any that does not. */
  private kernelHolds = false;
  private readonly specOf = (desired: DesiredState): TableSpec => this.spec(desired);

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
    const want = Wanted.of(desired, this.specOf);
    const shape = shapeOf(want.common);
    const last = this.wanted;
    // After container events alone, what the last sync left is what the kernel holds:
    // write the element difference without reading the table back (per changed
    // container when the state comes in parts). Anything else, or a shape change,
    // reads and compares. A failed write writes the table whole (write()); any
    // error forgets what the kernel holds.
    const vouched = this.kernelHolds && last !== undefined && last.shape === shape;
    const trusted =
      vouched &&
      (options.trustLastSync === true || (options.periodic?.watched === true && (await this.intact(want))));
    const drift = trusted
      ? elementDrift(changesBetween(last.want, want))
      : diffTable(want.spec(), await readTable(this.options.run));
    this.kernelHolds = false;
    const wrote = needsWrite(drift) ? await this.write(drift, want) : undefined;
    // What Docker's side changed since the last finished sync; a write beyond it is a repair.
    const asked = last === undefined ? undefined : trusted ? drift.changes : changesBetween(last.want, want);
    const outsideChanged =
      last !== undefined && last.want.common.outsideConfigured !== want.common.outsideConfigured;
    // The kernel refused the difference (it was not what dockfw left), or held elements or
    // rules beside what Docker's side changed: someone else's change was put back.
    const repaired =
      wrote === 'refused' ||
      (last !== undefined &&
        last.shape === shape &&
        wrote !== undefined &&
        (drift.structural.length > 0 || !within(drift.changes, asked ?? [])));
    want.release();
    this.wanted = { want, shape };
    this.kernelHolds = true;
    return ([4, 6] as const).map((family) => ({
      ...this.report(drift, family),
      desiredChanged: asked === undefined || touches(asked, family) || (family === 4 && outsideChanged),
      ...(repaired ? { repaired } : {}),
    }));
  }

  /**
   * The periodic check while the ruleset watch follows every commit (a change
   * inside dockfw's table gets a sync of its own): the chains are there, as
   * base chains where they must be, and the interface sets hold what is asked.
   * The rules and the verdict elements are taken as the last sync left them
   * (listing them costs nft seconds at 5,000 containers); every
   * DEEP_CHECK_EVERY checks the sync reads them all.
   */
  private async intact(want: Wanted): Promise<boolean> {
    const spec = want.common;
    const common = [...spec.sets.keys()].filter((name) => setFamily(name) === undefined);
    const seen = await readChainsAndSets(this.options.run, common);
    const regular = regularChains(spec);
    if (seen.chains.size !== regular.length + BASE_CHAINS.length) return false;
    if (!BASE_CHAINS.every((base) => baseChainAsDeclared(seen.chains.get(base.name), base))) return false;
    if (!regular.every((name) => seen.chains.has(name) && seen.chains.get(name)?.hook === undefined))
      return false;
    return common.every((name) => {
      const have = seen.sets.get(name)?.elements ?? [];
      const asked = spec.sets.get(name) ?? [];
      return have.length === asked.length && absentFrom(asked, have).length === 0;
    });
  }

  /** `refused`: the element write was refused and the table written whole. */
  private async write(drift: TableDrift, want: Wanted): Promise<'elements' | 'table' | 'refused'> {
    let refused = false;
    if (drift.structural.length === 0) {
      const payload = renderElementPayload(drift.changes);
      try {
        await applyNftPayload(this.options.run, payload);
        this.options.onWrite?.('elements', payload);
        return 'elements';
      } catch (error) {
        // Someone changed the table between our read (or the last sync) and this write: write it whole.
        if (!(error instanceof FirewallApplyError)) throw error;
        refused = true;
      }
    }
    const payload = renderTablePayload(want.spec());
    await applyNftPayload(this.options.run, payload);
    this.options.onWrite?.('table', payload);
    return refused ? 'refused' : 'table';
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
