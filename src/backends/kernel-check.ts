// Does the kernel hold what implements a judgement right now? (pure: the CLI
// reads the kernel, this compares). The expected rule or element text comes
// from the backends' own renderers for just that binding or rule, so it is
// spelled exactly as a sync writes it and as the kernel lists it back.
import { CHAIN_ENTRY, CHAIN_IN, CHAIN_PRE, CHAIN_PUBLISHED, PREROUTING } from './iptables/chains.js';
import { jumpPositions, normalizeRule, type FilterTable, type Variant } from './iptables/read.js';
import { familySets, setName, type FamilySets, type SetRole, type SetSeen } from './iptables/sets.js';
import { renderPreroutingPayload, renderSyncPayload } from './iptables/render.js';
import { tableSpec } from './nftables/elements.js';
import { BASE_CHAINS, CHAIN, PRE_CHAIN, type SetName } from './nftables/names.js';
import type { TableSeen } from './nftables/read.js';
import { chainRules, publishedRules, ruleComment } from './nftables/render.js';
import type { Family } from '../docker/snapshot.js';
import type { Interval } from '../net/intervals.js';
import { FAMILY_BITS, parseIPv4, parseIPv6 } from '../net/ip.js';
import type { DesiredState } from '../policy/desired.js';
import type { Judgement } from '../explain/decide.js';

export type KernelStatus = 'holds' | 'missing' | 'not-needed' | 'not-checked';

export interface KernelCheck {
  readonly status: KernelStatus;
  /** Rules (`CHAIN rule`) or elements (`set: element`, for iptables `dockfw-…: element`) that implement the judgement. */
  readonly expected: readonly string[];
  /** Those of `expected` the kernel does not hold. */
  readonly missing: readonly string[];
  readonly note?: string;
}

/** One family's iptables tables, in the variant Docker uses. */
export interface IptablesFamilyView {
  readonly variant: Variant;
  /** Parent of the filter jump (DOCKER-USER, or FORWARD for IPv6 on old engines). */
  readonly parent: string;
  readonly filter: FilterTable;
  readonly mangle: FilterTable;
  /** dockfw's verdict sets of the family, by name (absent: none read). */
  readonly sets?: ReadonlyMap<string, SetSeen>;
}

export type KernelView =
  | {
      readonly backend: 'iptables';
      /** A family absent here could not be read; `reason` says why. */
      readonly families: Partial<Record<Family, IptablesFamilyView>>;
      readonly reasons?: Partial<Record<Family, string>>;
    }
  | { readonly backend: 'nftables'; readonly table: TableSeen | undefined };

function parseFamily(family: Family, text: string): bigint | undefined {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

/** `a`, `a/len` or `a-b` as an interval; undefined for text it does not know. */
export function intervalOf(family: Family, text: string): Interval | undefined {
  const dash = text.indexOf('-');
  if (dash >= 0) {
    const start = parseFamily(family, text.slice(0, dash));
    const end = parseFamily(family, text.slice(dash + 1));
    return start === undefined || end === undefined ? undefined : { start, end };
  }
  const slash = text.indexOf('/');
  const base = parseFamily(family, slash >= 0 ? text.slice(0, slash) : text);
  if (base === undefined) return undefined;
  const bits = FAMILY_BITS[family];
  const prefix = slash >= 0 ? Number(text.slice(slash + 1)) : bits;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  return { start: base, end: base + (1n << BigInt(bits - prefix)) - 1n };
}

function covers(family: Family, text: string, source: bigint): boolean {
  const interval = intervalOf(family, text);
  return interval !== undefined && interval.start <= source && source <= interval.end;
}

function only(desired: DesiredState, part: Pick<DesiredState, 'rules' | 'bindings'>): DesiredState {
  return { ...desired, ...part, containers: [], errors: [], warnings: [] };
}

function result(expected: string[], held: (line: string) => boolean, note?: string): KernelCheck {
  const missing = expected.filter((line) => !held(line));
  return {
    status: expected.length === 0 ? 'not-needed' : missing.length > 0 ? 'missing' : 'holds',
    expected,
    missing,
    ...(note === undefined ? {} : { note }),
  };
}

/** The entry chain's lines that send packets on to the judging chain. */
function entryLines(payload: string, entry: string, judge: string): string[] {
  return payload
    .split('\n')
    .filter((l) => l.startsWith(`-A ${entry} `) && l.endsWith(`-j ${judge}`))
    .map((l) => l.slice(3));
}

/** The lookup rule of `chain` that consults the set `name`. */
function lookupLine(payload: string, chain: string, name: string): string | undefined {
  return payload
    .split('\n')
    .find((l) => l.startsWith(`-A ${chain} -m set --match-set ${name} `))
    ?.slice(3);
}

/** The source part of an admitting element (the last part, or the first of `boundany`). */
function elementSource(role: SetRole, element: string): string {
  const parts = element.split(',');
  return (role === 'boundany' ? parts[0] : parts[parts.length - 1]) ?? '';
}

/**
 * What decides the source in the sets: the admitting element that lets it in
 * (with its lookup rule), or the judging elements that drop everyone else.
 */
function deciding(
  sets: FamilySets,
  payload: string,
  chain: string,
  judgement: Judgement,
  family: Family,
  source: bigint,
  roles: { admit: readonly SetRole[]; judge: SetRole },
): string[] {
  if (judgement.verdict === 'allowed') {
    for (const role of roles.admit) {
      const hit = [...(sets.get(role) ?? [])].find((e) => covers(family, elementSource(role, e), source));
      const rule = lookupLine(payload, chain, setName(role, family));
      if (hit !== undefined && rule !== undefined) return [rule, `${setName(role, family)}: ${hit}`];
    }
    return [];
  }
  const judged = [...(sets.get(roles.judge) ?? [])];
  const rule = lookupLine(payload, chain, setName(roles.judge, family));
  if (judged.length === 0 || rule === undefined) return [];
  return [rule, ...judged.map((e) => `${setName(roles.judge, family)}: ${e}`)];
}

function heldIn(view: IptablesFamilyView): (line: string) => boolean {
  const normalised = new Map<string, Set<string>>();
  const chainSet = (table: FilterTable, chain: string): Set<string> => {
    const key = `${table === view.mangle ? 'mangle' : 'filter'} ${chain}`;
    let set = normalised.get(key);
    if (set === undefined) {
      set = new Set((table.chains.get(chain) ?? []).map(normalizeRule));
      normalised.set(key, set);
    }
    return set;
  };
  return (line) => {
    const element = /^(dockfw-\S+): (\S+)$/.exec(line);
    if (element !== null) return view.sets?.get(element[1] ?? '')?.elements.has(element[2] ?? '') === true;
    const space = line.indexOf(' ');
    const chain = line.slice(0, space);
    const table =
      chain === CHAIN_PRE || chain === CHAIN_PUBLISHED || chain === PREROUTING ? view.mangle : view.filter;
    return chainSet(table, chain).has(normalizeRule(line.slice(space + 1)));
  };
}

function checkIptables(
  desired: DesiredState,
  judgement: Judgement,
  view: IptablesFamilyView,
  source: bigint,
): KernelCheck {
  const held = heldIn(view);
  if (judgement.subject.kind === 'binding') {
    const { binding } = judgement.subject;
    const state = only(desired, { rules: [], bindings: [binding] });
    const payload = renderPreroutingPayload(state, binding.family, { parent: PREROUTING, positions: [1] });
    const rules = deciding(
      familySets(state, binding.family),
      payload,
      CHAIN_PUBLISHED,
      judgement,
      binding.family,
      source,
      {
        admit: ['boundip', 'boundany'],
        judge: 'bound',
      },
    );
    if (rules.length === 0)
      return result([], held, 'open to every source: nothing in DOCKFW-PUBLISHED drops it, none is needed');
    const jump = `${PREROUTING} -j ${CHAIN_PRE}`;
    const expected = [jump, ...entryLines(payload, CHAIN_PRE, CHAIN_PUBLISHED), ...rules];
    return result(expected, (line) =>
      line === jump ? jumpPositions(view.mangle, PREROUTING, CHAIN_PRE).length > 0 : held(line),
    );
  }
  const { rule } = judgement.subject;
  const state = only(desired, { rules: [rule], bindings: [] });
  const payload = renderSyncPayload(state, rule.family, { parent: view.parent, positions: [1] });
  const rules = deciding(familySets(state, rule.family), payload, CHAIN_IN, judgement, rule.family, source, {
    admit: ['allowed'],
    judge: 'guarded',
  });
  const jump = `${view.parent} -j ${CHAIN_ENTRY}`;
  const expected = [jump, ...entryLines(payload, CHAIN_ENTRY, CHAIN_IN), ...rules];
  return result(expected, (line) =>
    line === jump ? jumpPositions(view.filter, view.parent, CHAIN_ENTRY).length > 0 : held(line),
  );
}

function setNameFor(prefix: 'boundallowed' | 'bound' | 'allowed' | 'guarded', family: Family): SetName {
  return `${prefix}${family}`;
}

function checkNftables(
  desired: DesiredState,
  judgement: Judgement,
  table: TableSeen | undefined,
  source: bigint,
): KernelCheck {
  const isBinding = judgement.subject.kind === 'binding';
  const family =
    judgement.subject.kind === 'binding' ? judgement.subject.binding.family : judgement.subject.rule.family;
  const spec = tableSpec(
    judgement.subject.kind === 'binding'
      ? only(desired, { rules: [], bindings: [judgement.subject.binding] })
      : only(desired, { rules: [judgement.subject.rule], bindings: [] }),
  );
  const allowedSet = setNameFor(isBinding ? 'boundallowed' : 'allowed', family);
  const droppedSet = setNameFor(isBinding ? 'bound' : 'guarded', family);
  const set = judgement.verdict === 'allowed' ? allowedSet : droppedSet;
  const candidates = spec.sets.get(set) ?? [];
  const elements =
    judgement.verdict === 'allowed'
      ? candidates.filter((e) => covers(family, e.split(' . ').pop() ?? '', source)).slice(0, 1)
      : candidates;
  const chain = isBinding ? PRE_CHAIN : CHAIN;
  if (elements.length === 0)
    return result(
      [],
      () => true,
      `open to every source: no element of @${droppedSet} drops it, none is needed`,
    );
  const ruleList = isBinding ? publishedRules(spec) : chainRules(spec);
  const rule = ruleList.find((r) => r.text.includes(`@${set} `));
  const ruleLine = rule === undefined ? undefined : `chain ${chain}: rule "${ruleComment(rule.role)}"`;
  const expected = [...(ruleLine === undefined ? [] : [ruleLine]), ...elements.map((e) => `${set}: ${e}`)];
  const base = BASE_CHAINS.find((c) => c.name === chain);
  return result(
    expected,
    (line) => {
      if (table === undefined) return false;
      if (line === ruleLine) {
        const seen = table.chains.get(chain);
        return (
          seen !== undefined &&
          seen.hook === base?.hook &&
          rule !== undefined &&
          seen.rules.includes(ruleComment(rule.role))
        );
      }
      const element = line.slice(set.length + 2);
      return table.sets.get(set)?.elements.includes(element) === true;
    },
    table === undefined ? 'table inet dockfw is not in the kernel' : undefined,
  );
}

/** What the kernel holds for one judgement. */
export function checkJudgement(
  desired: DesiredState,
  judgement: Judgement,
  view: KernelView | undefined,
  source: bigint,
): KernelCheck {
  if (view === undefined) return { status: 'not-checked', expected: [], missing: [], note: 'offline' };
  if (view.backend === 'nftables') return checkNftables(desired, judgement, view.table, source);
  const family =
    judgement.subject.kind === 'binding' ? judgement.subject.binding.family : judgement.subject.rule.family;
  const tables = view.families[family];
  if (tables === undefined)
    return {
      status: 'not-checked',
      expected: [],
      missing: [],
      note: view.reasons?.[family] ?? `IPv${family} tables not read`,
    };
  return checkIptables(desired, judgement, tables, source);
}

/** One answer for several checks: missing wins, then not checked, then holds. */
export function overallStatus(checks: readonly KernelCheck[]): KernelStatus {
  if (checks.some((c) => c.status === 'missing')) return 'missing';
  if (checks.some((c) => c.status === 'not-checked')) return 'not-checked';
  if (checks.some((c) => c.status === 'holds')) return 'holds';
  return checks.length === 0 ? 'not-checked' : 'not-needed';
}
