// Does the kernel hold what implements a judgement right now? (pure: the CLI
// reads the kernel, this compares). The expected rule or element text comes
// from the backends' own renderers for just that binding or rule, so it is
// spelled exactly as a sync writes it and as the kernel lists it back.
import {
  CHAIN_ENTRY,
  CHAIN_IN,
  CHAIN_PRE,
  CHAIN_PUBLISHED,
  containerComment,
  PREROUTING,
} from './iptables/chains.js';
import {
  jumpPositions,
  normalizeRule,
  tokenizeRule,
  type FilterTable,
  type Variant,
} from './iptables/read.js';
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
  /** Rules (`CHAIN rule`) or elements (`set: element`) that implement the judgement. */
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

/** The iptables rule's source: `-s X`, `--src-range A-B`, or every address. */
function ruleSource(rule: string): string | undefined {
  const tokens = tokenizeRule(rule);
  for (let i = 0; i < tokens.length - 1; i++) {
    if (tokens[i] === '-s' || tokens[i] === '--src-range') return tokens[i + 1];
  }
  return undefined;
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

/** The `-A CHAIN …` lines of a payload in `chain` for one container. */
function lines(payload: string, chain: string, containerId: string): string[] {
  const comment = containerComment(containerId);
  return payload
    .split('\n')
    .filter((l) => l.startsWith(`-A ${chain} `) && l.includes(`"${comment}"`))
    .map((l) => l.slice(3));
}

/** The entry chain's lines that send packets on to the judging chain. */
function entryLines(payload: string, entry: string, judge: string): string[] {
  return payload
    .split('\n')
    .filter((l) => l.startsWith(`-A ${entry} `) && l.endsWith(`-j ${judge}`))
    .map((l) => l.slice(3));
}

/** The rules that decide the source: the RETURN that lets it in, or the rules that drop everyone else. */
function deciding(rules: readonly string[], judgement: Judgement, family: Family, source: bigint): string[] {
  if (judgement.verdict === 'allowed') {
    const returns = rules.filter((r) => r.endsWith('-j RETURN'));
    const hit = returns.find((r) => {
      const from = ruleSource(r);
      return from === undefined || covers(family, from, source);
    });
    return hit === undefined ? [] : [hit];
  }
  return rules.filter((r) => !r.endsWith('-j RETURN'));
}

function heldIn(tables: { mangle: FilterTable; filter: FilterTable }): (line: string) => boolean {
  const normalised = new Map<string, Set<string>>();
  const chainSet = (table: FilterTable, chain: string): Set<string> => {
    const key = `${table === tables.mangle ? 'mangle' : 'filter'} ${chain}`;
    let set = normalised.get(key);
    if (set === undefined) {
      set = new Set((table.chains.get(chain) ?? []).map(normalizeRule));
      normalised.set(key, set);
    }
    return set;
  };
  return (line) => {
    const space = line.indexOf(' ');
    const chain = line.slice(0, space);
    const table =
      chain === CHAIN_PRE || chain === CHAIN_PUBLISHED || chain === PREROUTING
        ? tables.mangle
        : tables.filter;
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
    const payload = renderPreroutingPayload(
      only(desired, { rules: [], bindings: [binding] }),
      binding.family,
      {
        parent: PREROUTING,
        positions: [1],
      },
    );
    const rules = deciding(
      lines(payload, CHAIN_PUBLISHED, binding.containerId),
      judgement,
      binding.family,
      source,
    );
    if (rules.length === 0)
      return result([], held, 'open to every source: no rule in DOCKFW-PUBLISHED drops it, none is needed');
    const jump = `${PREROUTING} -j ${CHAIN_PRE}`;
    const expected = [jump, ...entryLines(payload, CHAIN_PRE, CHAIN_PUBLISHED), ...rules.map((r) => r)];
    return result(expected, (line) =>
      line === jump ? jumpPositions(view.mangle, PREROUTING, CHAIN_PRE).length > 0 : held(line),
    );
  }
  const { rule } = judgement.subject;
  const payload = renderSyncPayload(only(desired, { rules: [rule], bindings: [] }), rule.family, {
    parent: view.parent,
    positions: [1],
  });
  const rules = deciding(lines(payload, CHAIN_IN, rule.containerId), judgement, rule.family, source);
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
