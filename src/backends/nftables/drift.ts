// Does the kernel already hold the table dockfw would write? Rules are compared
// by role (their comment) in order, sets by declaration and by element. When
// only elements differ, the sync writes just those; anything else rewrites the table.
import type { Family } from '../../docker/snapshot.js';
import type { Drift } from '../firewall.js';
import { absentFrom as minus, sameList } from '../lists.js';
import type { TableSpec } from './elements.js';
import {
  BASE_CHAINS,
  RECORD_SET_NAMES,
  RECORD_SET_TYPES,
  RECORD_TIMEOUT_SECONDS,
  SET_NAMES,
  SET_TYPES,
  setFamily,
  TABLE,
  type BaseChain,
  type SetName,
} from './names.js';
import type { ChainSeen, SetSeen } from './read.js';
import type { TableSeen } from './read.js';
import { regularChains, rulesOf, ruleComment, type ElementChanges } from './render.js';

export interface TableDrift {
  /** Why the whole table must be written again; empty when element changes suffice. */
  readonly structural: readonly string[];
  readonly rulesMissing: readonly string[];
  readonly rulesUnexpected: readonly string[];
  /** Same rules, another order. */
  readonly reordered: boolean;
  /** Per set, what to add and delete (sets that differ only). */
  readonly changes: readonly ElementChanges[];
}

/** The comment (role) of every rule of one base chain, in order. */
function expectedRulesOf(spec: TableSpec, chain: string): string[] {
  return rulesOf(chain, spec).map((r) => ruleComment(r.role));
}

/** A record set declared as renderTablePayload declares it (its elements are not looked at). */
function recordSetAsDeclared(name: (typeof RECORD_SET_NAMES)[number], set: SetSeen, size: number): boolean {
  return (
    sameList(set.type, RECORD_SET_TYPES[name]) &&
    set.flags.includes('timeout') &&
    !set.flags.includes('interval') &&
    set.size === size &&
    set.timeout === RECORD_TIMEOUT_SECONDS &&
    set.counter === true
  );
}

/** A base chain of the table as renderTablePayload declares it (its rules aside). */
export function baseChainAsDeclared(chain: ChainSeen | undefined, base: BaseChain): boolean {
  return (
    chain?.type === 'filter' &&
    chain.hook === base.hook &&
    chain.priority === base.priority &&
    chain.policy === 'accept'
  );
}

export function diffTable(spec: TableSpec, seen: TableSeen | undefined): TableDrift {
  const regular = regularChains(spec);
  const expectedRules = [...regular, ...BASE_CHAINS.map((c) => c.name)].flatMap((name) =>
    expectedRulesOf(spec, name),
  );
  const expectedSets = SET_NAMES.filter((name) => spec.sets.has(name));
  const changes: ElementChanges[] = [];
  for (const name of expectedSets) {
    const want = spec.sets.get(name) ?? [];
    const have = seen?.sets.get(name)?.elements ?? [];
    const change = { set: name, add: minus(want, have), delete: minus(have, want) };
    if (change.add.length > 0 || change.delete.length > 0) changes.push(change);
  }
  if (seen === undefined) {
    return {
      structural: [`table ${TABLE}`],
      rulesMissing: expectedRules,
      rulesUnexpected: [],
      reordered: false,
      changes,
    };
  }
  const structural: string[] = seen.damaged === undefined ? [] : [`table ${TABLE}: ${seen.damaged}`];
  const rulesMissing: string[] = [];
  const rulesUnexpected: string[] = [];
  let reordered = false;
  for (const base of BASE_CHAINS) {
    const chain = seen.chains.get(base.name);
    if (!baseChainAsDeclared(chain, base)) structural.push(`chain ${base.name}`);
    const want = expectedRulesOf(spec, base.name);
    const have = (chain?.rules ?? []).map((comment) => comment ?? '(rule without comment)');
    const missing = minus(want, have);
    const unexpected = minus(have, want);
    const moved = missing.length === 0 && unexpected.length === 0 && !sameList(have, want);
    rulesMissing.push(...missing);
    rulesUnexpected.push(...unexpected);
    reordered ||= moved;
    if (missing.length > 0 || unexpected.length > 0 || moved) structural.push(`chain ${base.name} rules`);
  }
  for (const name of regular) {
    const chain = seen.chains.get(name);
    if (chain === undefined || chain.hook !== undefined) {
      structural.push(`chain ${name}`);
      continue;
    }
    const want = expectedRulesOf(spec, name);
    const have = chain.rules.map((comment) => comment ?? '(rule without comment)');
    if (!sameList(have, want)) {
      rulesMissing.push(...minus(want, have));
      rulesUnexpected.push(...minus(have, want));
      structural.push(`chain ${name} rules`);
    }
  }
  const known = [...BASE_CHAINS.map((c) => c.name), ...regular];
  for (const other of seen.chains.keys())
    if (!known.includes(other)) structural.push(`chain ${other} (not ours)`);
  for (const name of expectedSets) {
    const set = seen.sets.get(name);
    if (set === undefined || !sameList(set.type, SET_TYPES[name]) || !sameList(set.flags, ['interval']))
      structural.push(`set ${name}`);
    else if (set.unreadable > 0) structural.push(`set ${name} (${set.unreadable} foreign elements)`);
  }
  const records = spec.records ?? 0;
  const recordSets: readonly string[] = records > 0 ? RECORD_SET_NAMES : [];
  for (const name of RECORD_SET_NAMES) {
    if (records === 0) continue;
    const set = seen.sets.get(name);
    if (set === undefined || !recordSetAsDeclared(name, set, records)) structural.push(`set ${name}`);
  }
  for (const other of seen.sets.keys()) {
    if (!(expectedSets as readonly string[]).includes(other) && !recordSets.includes(other))
      structural.push(`set ${other} (not ours)`);
  }
  return { structural: [...new Set(structural)], rulesMissing, rulesUnexpected, reordered, changes };
}

export function needsWrite(drift: TableDrift): boolean {
  return drift.structural.length > 0 || drift.changes.length > 0;
}

/** Element and rule differences of one family, in the shape every backend reports. */
export function familyDrift(drift: TableDrift, family: Family): Drift {
  // Rules and table-wide sets are reported with IPv4 (the table serves both).
  const tableWide = family === 4;
  const inFamily = (set: SetName): boolean => (setFamily(set) ?? 4) === family;
  const lines = (pick: (c: ElementChanges) => readonly string[]): string[] =>
    drift.changes.filter((c) => inFamily(c.set)).flatMap((c) => pick(c).map((e) => `set ${c.set}: ${e}`));
  return {
    missing: [...(tableWide ? drift.rulesMissing.map((r) => `rule ${r}`) : []), ...lines((c) => c.add)],
    unexpected: [
      ...(tableWide ? drift.rulesUnexpected.map((r) => `rule ${r}`) : []),
      ...lines((c) => c.delete),
    ],
    reordered: tableWide && drift.reordered,
    structural: tableWide ? drift.structural : [],
  };
}
