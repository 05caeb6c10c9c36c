// What a sync wants the table to hold, cut per container when the desired
// state comes in independent parts: the change after one container's event is
// found by comparing part objects and spelling the parts that changed, not the
// table's 170,000 elements. The whole sorted
// spec is only put together when something needs it (a read-back compare, a
// whole-table write).
import type { DesiredPart, DesiredState } from '../../policy/desired.js';
import { verdictElements, type TableSpec } from './elements.js';
import { SET_NAMES, type SetName } from './names.js';
import type { ElementChanges } from './render.js';
import { absentFrom } from '../lists.js';

type Sets = ReadonlyMap<SetName, readonly string[]>;

/** A state's parts; their elements are spelled on demand. */
interface PartsView {
  readonly parts: ReadonlyMap<string, DesiredPart>;
}

export class Wanted {
  private whole: TableSpec | undefined;

  private constructor(
    /** The rules' flags and the sets that are not per container (bridges, interfaces); verdict sets empty. */
    readonly common: TableSpec,
    /** Per container id, its part; undefined: only `whole` says what is wanted. */
    private readonly cut: PartsView | undefined,
    whole?: TableSpec,
  ) {
    this.whole = whole;
  }

  static of(desired: DesiredState, specOf: (desired: DesiredState) => TableSpec): Wanted {
    if (desired.parts === undefined) {
      const whole = specOf(desired);
      return new Wanted(whole, undefined, whole);
    }
    // Not a spread: that would put the whole rules and bindings together.
    const common = specOf({
      rules: [],
      bindings: [],
      bridges: desired.bridges,
      ...(desired.bridgesUnknown === true ? { bridgesUnknown: true } : {}),
      externalInterfaces: desired.externalInterfaces,
      containers: [],
      errors: [],
    });
    // The state's own map (states are immutable), not a copy: an event costs its containers.
    return new Wanted(common, { parts: desired.parts });
  }

  /** The whole spec, every set sorted (put together once, on demand). */
  spec(): TableSpec {
    if (this.whole !== undefined) return this.whole;
    const sets = new Map<SetName, string[]>();
    for (const [name, elements] of this.common.sets) sets.set(name, [...elements]);
    const cut = this.cut;
    cut?.parts.forEach((part) => {
      for (const [name, elements] of partSets(part)) for (const e of elements) sets.get(name)?.push(e);
    });
    for (const elements of sets.values()) elements.sort();
    this.whole = { ...this.common, sets };
    return this.whole;
  }

  /**
   * Lets the whole spec go when the parts can spell it again: kept after a
   * sync, its arrays held 13 MB at 5,000 containers while nothing asked for them.
   */
  release(): void {
    if (this.cut !== undefined) this.whole = undefined;
  }

  /** The element changes from `before` to this (both of one shape): per part when both are cut so. */
  changesFrom(before: Wanted): ElementChanges[] {
    const changes = new Map<SetName, { add: string[]; delete: string[] }>();
    const was = before.cut;
    const now = this.cut;
    if (was !== undefined && now !== undefined) {
      setsChanges(changes, before.common.sets, this.common.sets);
      let fresh = 0;
      now.parts.forEach((part, id) => {
        const last = was.parts.get(id);
        if (last === undefined) fresh++;
        if (last !== part)
          setsChanges(changes, last === undefined ? undefined : partSets(last), partSets(part));
      });
      // Ids of `before` that are not here went: there are some when it had more than the ids kept.
      if (was.parts.size > now.parts.size - fresh)
        was.parts.forEach((last, id) => {
          if (!now.parts.has(id)) setsChanges(changes, partSets(last), undefined);
        });
    } else {
      setsChanges(changes, before.spec().sets, this.spec().sets);
    }
    const out: ElementChanges[] = [];
    for (const set of SET_NAMES) {
      const entry = changes.get(set);
      if (entry === undefined) continue;
      // One container's element gone and another's the same: no change.
      const add = absentFrom(entry.add, entry.delete);
      const del = absentFrom(entry.delete, entry.add);
      if (add.length > 0 || del.length > 0) out.push({ set, add, delete: del });
    }
    return out;
  }
}

/**
 * One part's elements: its share of the whole spec, because no other part
 * claims its addresses or host ports (DesiredState.parts). Spelled when asked,
 * never kept: an event spells the containers it changed, and only a read-back
 * compare or a whole-table write spells them all. Kept, the texts held 22 MB at
 * 5,000 containers; spelling them all again (about 0.1 s there) is a fraction of
 * the nft read or write that goes with it.
 */
function partSets(part: DesiredPart): Sets {
  const sets = new Map<SetName, readonly string[]>();
  for (const [name, elements] of verdictElements(part)) if (elements.length > 0) sets.set(name, elements);
  return sets;
}

function change(changes: Map<SetName, { add: string[]; delete: string[] }>, set: SetName) {
  let entry = changes.get(set);
  if (entry === undefined) {
    entry = { add: [], delete: [] };
    changes.set(set, entry);
  }
  return entry;
}

function setsChanges(
  changes: Map<SetName, { add: string[]; delete: string[] }>,
  before: Sets | undefined,
  after: Sets | undefined,
): void {
  for (const name of new Set([...(before?.keys() ?? []), ...(after?.keys() ?? [])])) {
    const have = before?.get(name) ?? [];
    const want = after?.get(name) ?? [];
    if (have === want) continue;
    const add = absentFrom(want, have);
    const del = absentFrom(have, want);
    if (add.length > 0) change(changes, name).add.push(...add);
    if (del.length > 0) change(changes, name).delete.push(...del);
  }
}

/** The element changes from `before` to `after` (both of one shape): per part when both are cut so. */
export function changesBetween(before: Wanted, after: Wanted): ElementChanges[] {
  return after.changesFrom(before);
}
