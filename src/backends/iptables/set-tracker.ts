// One family's verdict sets followed from sync to sync, so a change costs what
// changed. When the desired state comes in parts (one per container), the
// tracker keeps each container's part and the sets' sizes, not their elements:
// an update spells the parts that are not the same objects as last time (before
// and after), and the whole sets are spelled only when a sync asks for them (a
// read-back compare). Otherwise the sets are cut into units (one per judged
// target: a binding's host address and service, a container address and
// service), each unit's elements spelled once and kept while its sources are the
// same list. Either way an update hands back the elements that came and went.
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
  /** The family's sets now, spelled whole on each call when the state comes in parts. */
  sets(): FamilySets;
  /** How many elements each set holds now. */
  readonly sizes: ReadonlyMap<SetRole, number>;
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
 * alone (no other part claims its targets: DesiredState.parts). Spelled when
 * asked, never kept: an update spells the containers that changed (the part
 * before and after); kept, 5,000 containers' elements held 25 MB.
 */
function partSets(part: DesiredPart, family: Family): PartElements {
  const alone = { rules: part.rules, bindings: part.bindings, bridges: [], externalInterfaces: [] };
  const lists = new Map<SetRole, readonly string[]>();
  for (const [role, elements] of familySets({ ...alone, containers: [], errors: [] }, family))
    if (elements.size > 0) lists.set(role, [...elements]);
  return lists;
}

/** Every part's elements together: the whole sets of a state that comes in parts. */
function spellAll(parts: ReadonlyMap<string, DesiredPart>, family: Family): Map<SetRole, Set<string>> {
  const sets = emptySets();
  parts.forEach((part) => {
    for (const [role, elements] of partSets(part, family)) {
      const into = sets.get(role);
      for (const e of elements) into?.add(e);
    }
  });
  return sets;
}

function sizesOf(sets: FamilySets): Map<SetRole, number> {
  return new Map(SET_ROLES.map((role) => [role, sets.get(role)?.size ?? 0]));
}

export class SetTracker {
  private units = new Map<string, Kept>();
  /**
   * Per container, its part as last applied, while the state comes in parts
   * (the sets are then not kept: `sets` is undefined); undefined: not followed so.
   */
  private parts: Map<string, DesiredPart> | undefined;
  /** False until the units describe `sets` (at first, and after a rebuild). */
  private unitsKnown = false;
  /** The sets as last asked for, unless `parts` describes them. */
  private sets: Map<SetRole, Set<string>> | undefined = emptySets();
  private counts = new Map<SetRole, number>(SET_ROLES.map((role) => [role, 0]));
  /** The parts map of the last update in parts (its sets() may reset the sizes). */
  private asked: ReadonlyMap<string, DesiredPart> | undefined;

  constructor(private readonly family: Family) {}

  /** How many elements each set holds as last asked for. */
  sizes(): Map<SetRole, number> {
    return new Map(this.counts);
  }

  /** The sets as last asked for: kept, or spelled from the parts. */
  private held(): FamilySets {
    if (this.sets !== undefined) return this.sets;
    return this.parts === undefined ? emptySets() : spellAll(this.parts, this.family);
  }

  /** Brings the sets to `desired`; returns them and what changed since the last update. */
  update(desired: DesiredState): SetsUpdate {
    if (desired.parts !== undefined) return this.updateParts(desired.parts);
    this.asked = undefined;
    if (this.parts !== undefined) {
      // Followed in parts until now: the units compare against the sets spelled whole.
      this.sets = spellAll(this.parts, this.family);
      this.parts = undefined;
    }
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
    const sets = this.sets ?? emptySets();
    for (const [role, elements] of remove) for (const e of elements) sets.get(role)?.delete(e);
    for (const [role, elements] of add) for (const e of elements) sets.get(role)?.add(e);
    this.sets = sets;
    this.counts = sizesOf(sets);
    this.units = next;
    return { sets: () => sets, sizes: this.counts, add, remove };
  }

  /**
   * Per container: only the parts that are not the same objects as last time are
   * spelled and compared. The kept map is changed in place (it is the tracker's
   * own) once every part was compared, so an event costs its containers, not a
   * new map of every container, and a throw leaves the tracker as it was.
   */
  private updateParts(parts: ReadonlyMap<string, DesiredPart>): SetsUpdate {
    const last = this.parts;
    if (last === undefined) {
      // Not followed in parts before: compare everything once.
      return this.followParts(parts);
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
    const changed: [string, DesiredPart][] = [];
    let fresh = 0;
    parts.forEach((part, id) => {
      const kept = last.get(id);
      if (kept === part) return;
      if (kept === undefined) fresh++;
      compare(kept === undefined ? undefined : partSets(kept, this.family), partSets(part, this.family));
      changed.push([id, part]);
    });
    // Ids kept that are not in `parts` went: there are some when more are kept than the ids of `parts` seen before.
    const gone: string[] = [];
    if (last.size > parts.size - fresh)
      last.forEach((kept, id) => {
        if (parts.has(id)) return;
        compare(partSets(kept, this.family), undefined);
        gone.push(id);
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
    // No two parts hold one element (DesiredState.parts): the sizes follow the changes.
    const counts = new Map(this.counts);
    for (const role of SET_ROLES)
      counts.set(
        role,
        (counts.get(role) ?? 0) + (add.get(role)?.length ?? 0) - (remove.get(role)?.length ?? 0),
      );
    // A size below zero means that rule broke: compare everything, element by element.
    if ([...counts.values()].some((n) => n < 0)) return this.followParts(parts);
    for (const [id, part] of changed) last.set(id, part);
    for (const id of gone) last.delete(id);
    this.counts = counts;
    this.asked = parts;
    // The unit map no longer describes the sets: a later update without parts compares them whole.
    if (this.units.size > 0) this.units = new Map();
    this.unitsKnown = false;
    return { sets: () => this.spelled(parts), sizes: counts, add, remove };
  }

  /** Every part's elements compared with the sets held, element by element; then followed in parts. */
  private followParts(parts: ReadonlyMap<string, DesiredPart>): SetsUpdate {
    const update = this.rebuild(spellAll(parts, this.family));
    this.parts = new Map(parts);
    this.asked = parts;
    // Not kept: only this update's caller holds them, until it lets the update go.
    this.sets = undefined;
    return update;
  }

  /**
   * The whole sets of the parts last asked for, spelled; the sizes are taken from
   * them, so a read-back compare (which writes the kernel to these) also resets
   * what the light check compares the kernel's counts with.
   */
  private spelled(parts: ReadonlyMap<string, DesiredPart>): FamilySets {
    const whole = spellAll(parts, this.family);
    if (this.asked === parts) this.counts = sizesOf(whole);
    return whole;
  }

  /** The sets replaced by `fresh`, compared element by element; the units are then unknown. */
  private rebuild(fresh: FamilySets): SetsUpdate {
    const add = perRole();
    const remove = perRole();
    const held = this.held();
    for (const role of SET_ROLES) {
      const want = fresh.get(role) ?? new Set<string>();
      const have = held.get(role) ?? new Set<string>();
      for (const e of want) if (!have.has(e)) add.get(role)?.push(e);
      for (const e of have) if (!want.has(e)) remove.get(role)?.push(e);
    }
    const sets = new Map(SET_ROLES.map((role) => [role, new Set(fresh.get(role))]));
    this.sets = sets;
    this.counts = sizesOf(sets);
    this.units = new Map();
    this.unitsKnown = false;
    return { sets: () => sets, sizes: this.counts, add, remove };
  }
}
