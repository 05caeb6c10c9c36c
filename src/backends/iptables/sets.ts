// The ipsets that hold the iptables backend's verdicts (pure): which sets a
// family has, their elements for a DesiredState in the one canonical text
// `ipset save` prints, and the `ipset restore` batches that write them: a
// whole family swapped in, or only the elements that differ, in an order that
// never admits a packet neither the old nor the new contents would.
// The rules that look these sets up never change with the containers.
import type { Family, Protocol } from '../../docker/snapshot.js';
import { intervalToCidrs } from '../../net/cidrs.js';
import { mergeIntervals, type Interval } from '../../net/intervals.js';
import { FAMILY_BITS, formatAddress, parseIPv4, parseIPv6 } from '../../net/ip.js';
import type { DesiredBinding, DesiredRule, DesiredState, RuleSources } from '../../policy/desired.js';

/**
 * What each set holds (per family; `ipset` sets are one family each):
 * - `bound`    host net . proto:port of every judged binding (every address: the two /1 halves)
 * - `boundip`  host address . proto:port . source net: who may reach a one-address binding
 * - `boundany` source net . proto:port: who may reach an every-address binding
 * - `allowed`  container address . proto:port . source net (`any`: the two /1 halves)
 * - `guarded`  container address . proto:port: judged, everyone else dropped
 * hash:net,port,net (which would key bindings on host net and source at once) is
 * not built into every kernel; an every-address binding is then keyed on its
 * port alone, which settleBindings makes the only claim on that port.
 */
export type SetRole = 'bound' | 'boundip' | 'boundany' | 'allowed' | 'guarded';

/** Write order within a family: the binding layer (mangle) first, as the chains are. */
export const SET_ROLES: readonly SetRole[] = ['bound', 'boundip', 'boundany', 'allowed', 'guarded'];

/** Admitting sets: removing an element closes, adding one opens. */
const ADMITS: ReadonlySet<SetRole> = new Set(['boundip', 'boundany', 'allowed']);

export const SET_TYPES: Readonly<Record<SetRole, string>> = {
  bound: 'hash:net,port',
  boundip: 'hash:ip,port,net',
  boundany: 'hash:net,port',
  allowed: 'hash:ip,port,net',
  guarded: 'hash:ip,port',
};

/** How the rule looks each set up (`-m set --match-set NAME FLAGS`). */
export const SET_MATCH: Readonly<Record<SetRole, string>> = {
  bound: 'dst,dst',
  boundip: 'dst,dst,src',
  boundany: 'src,dst',
  allowed: 'dst,dst,src',
  guarded: 'dst,dst',
};

/** Every set dockfw creates starts with this (its drop records too). */
export const SET_PREFIX = 'dockfw-';
/** Suffix of the sets a full write fills before swapping them in. */
export const TEMPORARY_SUFFIX = '-t';

export function setName(role: SetRole, family: Family): string {
  return `${SET_PREFIX}${role}${family}`;
}

export function temporaryName(role: SetRole, family: Family): string {
  return `${setName(role, family)}${TEMPORARY_SUFFIX}`;
}

/** Every verdict set name of both families, and their temporaries (for uninstall). */
export function allSetNames(): string[] {
  return ([4, 6] as const).flatMap((family) =>
    SET_ROLES.flatMap((role) => [setName(role, family), temporaryName(role, family)]),
  );
}

/** The smallest maxelem a set is made with; larger when the contents need it. */
export const MIN_MAXELEM = 65536;

/** Thrown when something that would reach the kernel is not what the core promises. */
export class SetRenderError extends Error {
  override readonly name = 'SetRenderError';
}

/** One family's sets: role → canonical element texts. */
export type FamilySets = ReadonlyMap<SetRole, ReadonlySet<string>>;

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

function parseFamily(family: Family, text: string): bigint | undefined {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

function address(family: Family, text: string): string {
  const value = parseFamily(family, text);
  if (value === undefined)
    throw new SetRenderError(`refusing to render IPv${family} address ${JSON.stringify(text)}`);
  return formatAddress(family, value);
}

/** A net as ipset save prints it: a full-length prefix without `/N`. */
function netText(family: Family, base: bigint, prefix: number): string {
  return prefix === FAMILY_BITS[family]
    ? formatAddress(family, base)
    : `${formatAddress(family, base)}/${prefix}`;
}

/** ipset refuses /0 in its net types: everything is the two halves. */
function halves(family: Family): string[] {
  const bits = BigInt(FAMILY_BITS[family]);
  return [netText(family, 0n, 1), netText(family, 1n << (bits - 1n), 1)];
}

/** The fewest nets covering exactly the sources (merged first), halves for everything. */
export function sourceNets(family: Family, intervals: readonly Interval[]): string[] {
  return netsOf(family, mergeIntervals(intervals));
}

// One container's sources are the same list for each of its ports and bindings: spelled once.
const NETS = new Map<string, string[]>();

function netsOf(family: Family, intervals: readonly Interval[]): string[] {
  const key = `${family} ${intervals.map((i) => `${i.start}-${i.end}`).join(' ')}`;
  const known = NETS.get(key);
  if (known !== undefined) return known;
  if (NETS.size > 10_000) NETS.clear();
  const nets = intervals.flatMap((interval) =>
    intervalToCidrs(family, interval).flatMap((cidr) =>
      cidr.prefix === 0 ? halves(family) : [netText(family, cidr.base, cidr.prefix)],
    ),
  );
  NETS.set(key, nets);
  return nets;
}

function protocol(text: string): Protocol {
  const known = PROTOCOLS.find((p) => p === text);
  if (known === undefined) throw new SetRenderError(`refusing to render protocol ${JSON.stringify(text)}`);
  return known;
}

/** Every port of `from..to` as `proto:port` (ipset save lists a range port by port). */
function services(proto: string, from: number, to: number): string[] {
  for (const port of [from, to]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new SetRenderError(`refusing to render port ${port}`);
  }
  if (from > to) throw new SetRenderError(`refusing to render port range ${from}-${to}`);
  const p = protocol(proto);
  const out: string[] = [];
  for (let port = from; port <= to; port++) out.push(`${p}:${port}`);
  return out;
}

/** Every role's set, empty. */
export function emptySets(): Map<SetRole, Set<string>> {
  return new Map(SET_ROLES.map((role) => [role, new Set<string>()]));
}

/**
 * What one judged target puts in the sets: a published binding's host address
 * (or every address) and service, or a container address and service. Its
 * elements depend only on the key and the sources, so a unit whose sources are
 * the same list as last time holds the same elements.
 */
export interface SetUnit {
  readonly key: string;
  /** A binding's unit (bindings are settled to one per target already). */
  readonly binding: boolean;
  readonly sources: RuleSources;
  elements(): (readonly [SetRole, string])[];
}

/**
 * Every unit of one family's sets, in DesiredState order. Container rules: one
 * verdict per (address, protocol, port), the first rule in order winning (as
 * the first matching rule of a chain would), so two claims never widen each
 * other; `visit` sees a later claim and must skip it. Bindings are one claim
 * per port already (settleBindings).
 */
export function unitsOf(
  desired: DesiredState,
  family: Family,
  visit: (unit: SetUnit) => void,
  options: { readonly remember?: boolean } = {},
): void {
  const units = options.remember === true ? remembered : made;
  for (const binding of desired.bindings) {
    if (binding.family !== family) continue;
    for (const unit of units(binding, () => bindingUnits(binding, family))) visit(unit);
  }
  for (const rule of desired.rules) {
    if (rule.family !== family) continue;
    for (const unit of units(rule, () => ruleUnits(rule, family))) visit(unit);
  }
}

// A container the cache did not re-read keeps its rule and binding objects: their
// units too, for a caller that walks every unit on every sync (remember). Others
// do not keep them: every rule's units held 11 MB at 5,000 containers.
const UNITS = new WeakMap<object, readonly SetUnit[]>();

function remembered(owner: object, make: () => SetUnit[]): readonly SetUnit[] {
  let units = UNITS.get(owner);
  if (units === undefined) {
    units = make();
    UNITS.set(owner, units);
  }
  return units;
}

function made(_owner: object, make: () => SetUnit[]): readonly SetUnit[] {
  return make();
}

function bindingUnits(binding: DesiredBinding, family: Family): SetUnit[] {
  const sources = binding.sources;
  // Open to everyone: no element, nothing drops it.
  if (sources === 'any') {
    services(binding.protocol, binding.portFrom, binding.portTo);
    return [];
  }
  const host = binding.hostAddress === undefined ? undefined : address(family, binding.hostAddress);
  return services(binding.protocol, binding.portFrom, binding.portTo).map((service) => ({
    key: `b ${host ?? '*'},${service}`,
    binding: true,
    sources,
    elements: () => {
      const out: (readonly [SetRole, string])[] = [];
      for (const net of host === undefined ? halves(family) : [host])
        out.push(['bound', `${net},${service}`]);
      for (const source of sourceNets(family, sources)) {
        if (host === undefined) out.push(['boundany', `${source},${service}`]);
        else out.push(['boundip', `${host},${service},${source}`]);
      }
      return out;
    },
  }));
}

function ruleUnits(rule: DesiredRule, family: Family): SetUnit[] {
  const target = address(family, rule.address);
  const sources = rule.sources;
  return services(rule.protocol, rule.portFrom, rule.portTo).map((service) => {
    const key = `${target},${service}`;
    return {
      key: `r ${key}`,
      binding: false,
      sources,
      elements: () => {
        const nets = sources === 'any' ? halves(family) : sourceNets(family, sources);
        const out: (readonly [SetRole, string])[] = nets.map(
          (source) => ['allowed', `${key},${source}`] as const,
        );
        // `any`: allowed from everywhere and not judged, like the RETURN without -s it replaces.
        if (sources !== 'any') out.push(['guarded', key]);
        return out;
      },
    };
  });
}

/** One family's sets for a DesiredState (every unit, the first claim on a container target winning). */
export function familySets(desired: DesiredState, family: Family): FamilySets {
  const sets = emptySets();
  const claimed = new Set<string>();
  unitsOf(desired, family, (unit) => {
    if (!unit.binding) {
      if (claimed.has(unit.key)) return;
      claimed.add(unit.key);
    }
    for (const [role, element] of unit.elements()) sets.get(role)?.add(element);
  });
  return sets;
}

function canonicalNet(family: Family, text: string, exact: boolean): string | undefined {
  const slash = text.indexOf('/');
  const value = parseFamily(family, slash < 0 ? text : text.slice(0, slash));
  const prefix = slash < 0 ? FAMILY_BITS[family] : Number(text.slice(slash + 1));
  if (value === undefined || !Number.isInteger(prefix) || prefix < 1 || prefix > FAMILY_BITS[family])
    return undefined;
  if (exact && slash >= 0) return undefined;
  return netText(family, value, prefix);
}

function canonicalService(text: string): string | undefined {
  const colon = text.indexOf(':');
  const proto = PROTOCOLS.find((p) => p === text.slice(0, colon));
  const port = Number(text.slice(colon + 1));
  if (proto === undefined || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return `${proto}:${port}`;
}

/** The parts of each set type's element: an exact address, a net, or a service. */
const SHAPES: Readonly<Record<string, readonly ('ip' | 'net' | 'service')[]>> = {
  'hash:ip,port': ['ip', 'service'],
  'hash:net,port': ['net', 'service'],
  'hash:ip,port,net': ['ip', 'service', 'net'],
};

/** One element as ipset save prints it, in canonical text; undefined if not understood. */
export function canonicalElement(type: string, family: Family, text: string): string | undefined {
  const shape = SHAPES[type];
  const parts = text.split(',');
  if (shape === undefined || parts.length !== shape.length) return undefined;
  const out: string[] = [];
  for (const [i, kind] of shape.entries()) {
    const part = parts[i] ?? '';
    const value = kind === 'service' ? canonicalService(part) : canonicalNet(family, part, kind === 'ip');
    if (value === undefined) return undefined;
    out.push(value);
  }
  return out.join(',');
}

/** A set as read from the kernel. */
export interface SetSeen {
  readonly type: string;
  readonly family: string;
  readonly maxelem: number;
  /** Elements as `ipset save` printed them (its canonical text, as familySets spells them). */
  readonly elements: ReadonlySet<string>;
}

/** `ipset save` text → sets by name (only the named ones are kept). */
export function parseSetSave(text: string, wanted: ReadonlySet<string>): Map<string, SetSeen> {
  const created = new Map<string, { type: string; family: string; maxelem: number; elements: Set<string> }>();
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    const name = words[1] ?? '';
    if (!wanted.has(name)) continue;
    if (words[0] === 'create') {
      const option = (key: string): string | undefined => {
        const i = words.indexOf(key, 3);
        return i < 0 ? undefined : words[i + 1];
      };
      created.set(name, {
        type: words[2] ?? '',
        family: option('family') ?? 'inet',
        maxelem: Number(option('maxelem') ?? MIN_MAXELEM),
        elements: new Set(),
      });
      continue;
    }
    const set = created.get(name);
    if (words[0] !== 'add' || set === undefined) continue;
    // ipset save prints its own canonical text; diffSets canonicalises only what differs.
    set.elements.add(words[2] ?? '');
  }
  return created;
}

export interface SetsDiff {
  /** Sets missing, of another type or family, or too small: the family is written whole. */
  readonly structural: readonly string[];
  /** Per role, elements to add and to delete (canonical text). */
  readonly add: ReadonlyMap<SetRole, readonly string[]>;
  readonly remove: ReadonlyMap<SetRole, readonly string[]>;
}

/** A problem diffSets put in `structural`: the set is not there. */
export function setGone(problem: string): boolean {
  return problem.endsWith(' missing');
}

/** A problem diffSets put in `structural` that is dockfw's own doing: the set must grow. */
export function setOutgrown(problem: string): boolean {
  return / holds at most \d+$/.test(problem);
}

export function familyLabel(family: Family): 'inet' | 'inet6' {
  return family === 4 ? 'inet' : 'inet6';
}

/** What differs between the sets a family should have and the ones read. */
export function diffSets(family: Family, want: FamilySets, seen: ReadonlyMap<string, SetSeen>): SetsDiff {
  const structural: string[] = [];
  const add = new Map<SetRole, string[]>();
  const remove = new Map<SetRole, string[]>();
  for (const role of SET_ROLES) {
    const name = setName(role, family);
    const wanted = want.get(role) ?? new Set<string>();
    const have = seen.get(name);
    if (have === undefined) {
      structural.push(`${name} missing`);
      continue;
    }
    if (have.type !== SET_TYPES[role] || have.family !== familyLabel(family)) {
      structural.push(`${name} is ${have.type} family ${have.family}`);
      continue;
    }
    if (have.maxelem < wanted.size) structural.push(`${name} holds at most ${have.maxelem}`);
    // Text equal first (nearly every element at steady state); only the rest is parsed.
    const extra = [...have.elements].filter((e) => !wanted.has(e));
    const family_ = family;
    const understood = new Map(
      extra.map((e) => [e, canonicalElement(have.type, family_, e) ?? `? ${e}`] as const),
    );
    const haveCanonical = new Set(understood.values());
    add.set(
      role,
      [...wanted].filter((e) => !have.elements.has(e) && !haveCanonical.has(e)),
    );
    remove.set(
      role,
      extra.filter((e) => !wanted.has(understood.get(e) ?? e)).map((e) => understood.get(e) ?? e),
    );
  }
  return { structural, add, remove };
}

export function setsDiffer(diff: SetsDiff): boolean {
  return (
    diff.structural.length > 0 ||
    [...diff.add.values(), ...diff.remove.values()].some((elements) => elements.length > 0)
  );
}

/** `SET element` lines, for drift reports. */
export function diffLines(family: Family, elements: ReadonlyMap<SetRole, readonly string[]>): string[] {
  return SET_ROLES.flatMap((role) =>
    (elements.get(role) ?? []).map((element) => `${setName(role, family)} ${element}`),
  );
}

/** Elements that came from a read and were not understood cannot be deleted by text. */
function writable(element: string): boolean {
  return !element.startsWith('? ');
}

/**
 * Only the elements that differ, as one `ipset restore` batch. Every prefix
 * of it (restore stops at the first error) admits no packet that neither the
 * old nor the new contents would: first admitting elements go, then judging
 * ones come (both only close), then admitting ones come, then judging ones go
 * (both only open up to the new contents). Returns undefined when an element
 * read cannot be deleted by its text: then the family is written whole.
 */
export function renderSetDelta(family: Family, diff: SetsDiff): string | undefined {
  return renderSetDeltas([{ family, diff }]);
}

/** The four steps of a delta, in order: which layer, which verb, from which side of the diff. */
const DELTA_STEPS = [
  { admits: true, verb: 'del', side: 'remove' },
  { admits: false, verb: 'add', side: 'add' },
  { admits: true, verb: 'add', side: 'add' },
  { admits: false, verb: 'del', side: 'remove' },
] as const;

/**
 * Several families' deltas as one batch, step by step across the families: every
 * prefix holds each family's closing steps before any family's opening ones, so a
 * line that fails in one family holds back no other family's closing.
 */
export function renderSetDeltas(
  deltas: readonly { readonly family: Family; readonly diff: SetsDiff }[],
): string | undefined {
  const lines: string[] = [];
  for (const { admits, verb, side } of DELTA_STEPS)
    for (const { family, diff } of deltas)
      for (const role of SET_ROLES) {
        if (ADMITS.has(role) !== admits) continue;
        for (const element of diff[side].get(role) ?? []) {
          if (!writable(element)) return undefined;
          lines.push(`${verb} -exist ${setName(role, family)} ${element}`);
        }
      }
  return lines.map((l) => `${l}\n`).join('');
}

function maxelem(size: number): number {
  let m = MIN_MAXELEM;
  while (m < size * 2) m *= 2;
  return m;
}

/** The maxelem a full write gives each of the family's sets for `want`. */
export function capacityFor(want: FamilySets): ReadonlyMap<SetRole, number> {
  return new Map(SET_ROLES.map((role) => [role, maxelem(want.get(role)?.size ?? 0)] as const));
}

function createLine(name: string, role: SetRole, family: Family, size: number): string {
  return `create ${name} ${SET_TYPES[role]} family ${familyLabel(family)} maxelem ${maxelem(size)}`;
}

/**
 * The whole family as one `ipset restore` batch: each set is filled under a
 * temporary name and swapped in at once (`swap` is atomic); a set that does not
 * exist yet is created empty first. The binding layer's sets go first. Between
 * two swaps, one set is new and the others old: for each packet that is the old
 * or the new verdict (allowed before judged: both orders only combine verdicts
 * each end gives). `present`: the real sets that exist now (with the right
 * type); `leftovers`: temporaries a broken earlier write left.
 */
export function renderSetsFull(
  family: Family,
  want: FamilySets,
  present: ReadonlySet<string>,
  leftovers: ReadonlySet<string>,
): string {
  const lines: string[] = [];
  for (const role of SET_ROLES) {
    const name = setName(role, family);
    const temporary = temporaryName(role, family);
    const elements = [...(want.get(role) ?? [])];
    if (leftovers.has(temporary)) lines.push(`destroy ${temporary}`);
    if (!present.has(name)) lines.push(createLine(name, role, family, elements.length));
    lines.push(createLine(temporary, role, family, elements.length));
    for (const element of elements) lines.push(`add ${temporary} ${element}`);
    lines.push(`swap ${temporary} ${name}`, `destroy ${temporary}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}
