// One family's verdict sets kept from sync to sync, so a change costs what
// changed: the sets are cut into units (one per judged target: a binding's host
// address and service, a container address and service), each unit's elements
// spelled once and kept while its sources are the same list (a container the
// cache did not re-read keeps its lists). A sync walks the units, not the
// elements, and hands back the elements that came and went.
import type { Family } from '../../docker/snapshot.js';
import { absentFrom } from '../lists.js';
import type { DesiredPart, DesiredState, RuleSources } from '../../policy/desired.js';
import {
  emptySets,
  familySets,
  SET_ROLES,
  unitsOf,
  type FamilySets,
  type SetRole,
  type SetUnit,
} from './sets.js';

/** Per role, the elements that came or went. */
export type SetChanges = ReadonlyMap<SetRole, readonly string[]>;

export interface SetsUpdate {
  /** The family's sets now: the tracker's own, valid until its next update. */
  readonly sets: FamilySets;
  readonly add: SetChanges;
  readonly remove: SetChanges;
}

interface Kept {
  readonly sources: RuleSources;
  readonly elements: readonly (readonly [SetRole, string])[];
}

/** Every element of the units, per role. */
function collect(units: ReadonlyMap<string, Kept>): FamilySets {
  const sets = emptySets();
  for (const unit of units.values()) for (const [role, e] of unit.elements) sets.get(role)?.add(e);
  return sets;
}

function perRole(): Map<SetRole, string[]> {
  return new Map(SET_ROLES.map((role) => [role, []]));
}

/** One container's elements in one family, per role (roles it has none in left out). */
type PartElements = ReadonlyMap<SetRole, readonly string[]>;

/**
 * One container's elements in one family: the sets of a state holding its part
 * alone (no other part claims its targets: DesiredState.parts). Kept as lists,
 * not sets: 5,000 containers' element sets held 37 MB, the lists a fraction.
 */
const partElements = new WeakMap<DesiredPart, Map<Family, PartElements>>();

function partSets(part: DesiredPart, family: Family): PartElements {
  let byFamily = partElements.get(part);
  if (byFamily === undefined) {
    byFamily = new Map();
    partElements.set(part, byFamily);
  }
  let sets = byFamily.get(family);
  if (sets === undefined) {
    const alone = { rules: part.rules, bindings: part.bindings, bridges: [], externalInterfaces: [] };
    const lists = new Map<SetRole, readonly string[]>();
    for (const [role, elements] of familySets({ ...alone, containers: [], errors: [] }, family))
      if (elements.size > 0) lists.set(role, [...elements]);
    sets = lists;
    byFamily.set(family, sets);
  }
  return sets;
}

interface KeptPart {
  readonly part: DesiredPart;
  readonly sets: PartElements;
}

export class SetTracker {
  private units = new Map<string, Kept>();
  /** Per container, its elements, while the state comes in parts; undefined: not followed so. */
  private parts: Map<string, KeptPart> | undefined;
  /** False until the units describe `sets` (at first, and after a rebuild). */
  private unitsKnown = false;
  private sets = emptySets();

  constructor(private readonly family: Family) {}

  /** How many elements each set holds as last asked for. */
  sizes(): Map<SetRole, number> {
    return new Map(SET_ROLES.map((role) => [role, this.sets.get(role)?.size ?? 0]));
  }

  /** Brings the sets to `desired`; returns them and what changed since the last update. */
  update(desired: DesiredState): SetsUpdate {
    if (desired.parts !== undefined) return this.updateParts(desired.parts);
    this.parts = undefined;
    const next = new Map<string, Kept>();
    let exact = true;
    unitsOf(
      desired,
      this.family,
      (unit: SetUnit) => {
        const seen = next.get(unit.key);
        if (seen !== undefined) {
          // Units are one per target; a second one for the same target means the
          // desired state broke that rule: compute everything the long way.
          if (unit.binding) exact = false;
          return;
        }
        const old = this.units.get(unit.key);
        next.set(
          unit.key,
          old !== undefined && old.sources === unit.sources
            ? old
            : { sources: unit.sources, elements: unit.elements() },
        );
      },
      { remember: true },
    );
    if (!exact) return this.rebuild(familySets(desired, this.family));
    if (!this.unitsKnown) {
      const fresh = this.rebuild(collect(next));
      this.units = next;
      this.unitsKnown = true;
      return fresh;
    }
    return this.apply(next);
  }

  private apply(next: Map<string, Kept>): SetsUpdate {
    const add = perRole();
    const remove = perRole();
    for (const [key, unit] of next) {
      const old = this.units.get(key);
      if (old === unit) continue;
      const before = new Set((old?.elements ?? []).map(([role, e]) => `${role} ${e}`));
      const after = new Set(unit.elements.map(([role, e]) => `${role} ${e}`));
      for (const [role, e] of unit.elements) if (!before.has(`${role} ${e}`)) add.get(role)?.push(e);
      for (const [role, e] of old?.elements ?? []) if (!after.has(`${role} ${e}`)) remove.get(role)?.push(e);
    }
    for (const [key, unit] of this.units) {
      if (next.has(key)) continue;
      for (const [role, e] of unit.elements) remove.get(role)?.push(e);
    }
    for (const [role, elements] of remove) for (const e of elements) this.sets.get(role)?.delete(e);
    for (const [role, elements] of add) for (const e of elements) this.sets.get(role)?.add(e);
    this.units = next;
    return { sets: this.sets, add, remove };
  }

  /**
   * Per container: only the parts that are not the same objects as last time are
   * compared. The kept map is changed in place (it is the tracker's own), so an
   * event costs its containers, not a new map of every container.
   */
  private updateParts(parts: ReadonlyMap<string, DesiredPart>): SetsUpdate {
    const last = this.parts;
    if (last === undefined) {
      // Not followed in parts before: compare everything once.
      const next = new Map<string, KeptPart>();
      const fresh = emptySets();
      parts.forEach((part, id) => {
        const sets = partSets(part, this.family);
        next.set(id, { part, sets });
        for (const [role, elements] of sets) for (const e of elements) fresh.get(role)?.add(e);
      });
      const update = this.rebuild(fresh);
      this.parts = next;
      return update;
    }
    const add = perRole();
    const remove = perRole();
    const compare = (before: PartElements | undefined, after: PartElements | undefined): void => {
      for (const role of SET_ROLES) {
        const have = before?.get(role) ?? [];
        const want = after?.get(role) ?? [];
        if (have === want) continue;
        add.get(role)?.push(...absentFrom(want, have));
        remove.get(role)?.push(...absentFrom(have, want));
      }
    };
    // Until the walk ends the kept map is half updated: a throw leaves the tracker comparing whole.
    this.parts = undefined;
    parts.forEach((part, id) => {
      const kept = last.get(id);
      if (kept?.part === part) return;
      const now = { part, sets: partSets(part, this.family) };
      compare(kept?.sets, now.sets);
      last.set(id, now);
    });
    // Every id of `parts` is kept now; more kept than that: some went.
    if (last.size > parts.size)
      last.forEach((kept, id) => {
        if (parts.has(id)) return;
        compare(kept.sets, undefined);
        last.delete(id);
      });
    for (const role of SET_ROLES) {
      // One container's element gone and another's the same: no change.
      const came = add.get(role) ?? [];
      const went = new Set(remove.get(role));
      const both = new Set(came.filter((e) => went.has(e)));
      if (both.size === 0) continue;
      add.set(
        role,
        came.filter((e) => !both.has(e)),
      );
      remove.set(
        role,
        [...went].filter((e) => !both.has(e)),
      );
    }
    for (const [role, elements] of remove) for (const e of elements) this.sets.get(role)?.delete(e);
    for (const [role, elements] of add) for (const e of elements) this.sets.get(role)?.add(e);
    this.parts = last;
    // The unit map no longer describes the sets: a later update without parts compares them whole.
    if (this.units.size > 0) this.units = new Map();
    this.unitsKnown = false;
    return { sets: this.sets, add, remove };
  }

  /** The sets replaced by `fresh`, compared element by element; the units are then unknown. */
  private rebuild(fresh: FamilySets): SetsUpdate {
    const add = perRole();
    const remove = perRole();
    for (const role of SET_ROLES) {
      const want = fresh.get(role) ?? new Set<string>();
      const have = this.sets.get(role) ?? new Set<string>();
      for (const e of want) if (!have.has(e)) add.get(role)?.push(e);
      for (const e of have) if (!want.has(e)) remove.get(role)?.push(e);
    }
    this.sets = new Map(SET_ROLES.map((role) => [role, new Set(fresh.get(role))]));
    this.units = new Map();
    this.unitsKnown = false;
    return { sets: this.sets, add, remove };
  }
}
