// DesiredState → the elements of dockfw's nftables sets (pure). Every element is
// spelled in one canonical text, used both to write it and to compare it with
// what the kernel lists, so "what changed" is a plain set difference.
import type { Family, Protocol } from '../../docker/snapshot.js';
import { cidrPrefix, mergeIntervals, sameSources, type Interval } from '../../net/intervals.js';
import { FAMILY_BITS, formatAddress, parseIPv4, parseIPv6 } from '../../net/ip.js';
import type { DesiredState, RuleSources } from '../../policy/desired.js';
import { DEFAULT_DROP_RECORDS, VERDICT_SETS, type SetName } from './names.js';
import { protocolNamed } from '../../net/family.js';

/** Thrown when something that would reach the kernel is not what the core promises. */
export class NftRenderError extends Error {
  override readonly name = 'NftRenderError';
}

/** What dockfw's table should hold: which entry rules, and every set's elements. */
export interface TableSpec {
  /** DOCKFW_EXTERNAL_INTERFACES is set: only packets arriving on those are judged. */
  readonly outsideConfigured: boolean;
  /** Docker's bridges are not known yet (boot guard): the catch-all judges every interface. */
  readonly bridgesUnknown?: boolean;
  /** Canonical element texts per set, sorted; a set absent here is absent from the table. */
  readonly sets: ReadonlyMap<SetName, readonly string[]>;
  /** Size of each family's drop record set; absent or 0: drops are not recorded. */
  readonly records?: number;
  /** Established connections skip the lookups (only where revoked ones are cut). */
  readonly fastPath?: boolean;
}

const INTERFACE = /^[A-Za-z0-9_.+-]{1,15}$/;

/** An interface name as an nft string; a trailing `+` (iptables' wildcard) becomes nft's `*`. */
export function ifnameElement(name: string): string {
  if (!INTERFACE.test(name)) throw new NftRenderError(`refusing to render interface ${JSON.stringify(name)}`);
  return `"${name.endsWith('+') ? `${name.slice(0, -1)}*` : name}"`;
}

/** Interval sets refuse overlapping elements: drop names a wildcard already covers. */
function ifnameSet(names: readonly string[]): string[] {
  const elements = [...new Set(names.map(ifnameElement))];
  const bare = (element: string): string => element.slice(1, -1);
  const wildcards = elements.filter((e) => bare(e).endsWith('*'));
  const covered = (element: string): boolean =>
    wildcards.some((w) => w !== element && bare(element).startsWith(bare(w).slice(0, -1)));
  return elements.filter((e) => !covered(e)).sort();
}

function parseFamily(family: Family, text: string): bigint | undefined {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

/** One address, re-formatted from its number (never copied text). */
export function addressElement(family: Family, text: string): string {
  const value = parseFamily(family, text);
  if (value === undefined)
    throw new NftRenderError(`refusing to render IPv${family} address ${JSON.stringify(text)}`);
  return formatAddress(family, value);
}

/** Source interval: one address, a CIDR block when it is one, else `a-b`. */
export function intervalElement(family: Family, interval: Interval): string {
  const max = (1n << BigInt(FAMILY_BITS[family])) - 1n;
  if (interval.start < 0n || interval.end > max || interval.start > interval.end)
    throw new NftRenderError(`refusing to render IPv${family} interval ${interval.start}-${interval.end}`);
  if (interval.start === interval.end) return formatAddress(family, interval.start);
  const prefix = cidrPrefix(family, interval);
  if (prefix !== undefined) return `${formatAddress(family, interval.start)}/${prefix}`;
  return `${formatAddress(family, interval.start)}-${formatAddress(family, interval.end)}`;
}

export function portElement(from: number, to: number): string {
  for (const port of [from, to]) {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new NftRenderError(`refusing to render port ${port}`);
  }
  if (from > to) throw new NftRenderError(`refusing to render port range ${from}-${to}`);
  return from === to ? `${from}` : `${from}-${to}`;
}

export function protocolElement(protocol: string): Protocol {
  const known = protocolNamed(protocol);
  if (known === undefined)
    throw new NftRenderError(`refusing to render protocol ${JSON.stringify(protocol)}`);
  return known;
}

interface PortVerdict {
  readonly family: Family;
  readonly address: string;
  readonly protocol: Protocol;
  readonly portFrom: number;
  readonly portTo: number;
  readonly sources: RuleSources;
}

/**
 * One verdict per (address, protocol, port), the first rule in order winning
 * (as the first matching iptables rule would), consecutive ports with the same
 * sources joined again. Interval sets refuse overlapping elements, so two
 * containers claiming one address must not both reach the kernel.
 */
function portVerdicts(desired: Pick<DesiredState, 'rules'>): PortVerdict[] {
  const seen = new Set<string>();
  const verdicts: PortVerdict[] = [];
  for (const rule of desired.rules) {
    const address = addressElement(rule.family, rule.address);
    const protocol = protocolElement(rule.protocol);
    portElement(rule.portFrom, rule.portTo);
    for (let port = rule.portFrom; port <= rule.portTo; port++) {
      const key = `${rule.family} ${address} ${protocol} ${port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const last = verdicts[verdicts.length - 1];
      if (
        last !== undefined &&
        last.family === rule.family &&
        last.address === address &&
        last.protocol === protocol &&
        last.portTo + 1 === port &&
        sameSources(last.sources, rule.sources)
      ) {
        verdicts[verdicts.length - 1] = { ...last, portTo: port };
      } else {
        verdicts.push({
          family: rule.family,
          address,
          protocol,
          portFrom: port,
          portTo: port,
          sources: rule.sources,
        });
      }
    }
  }
  return verdicts;
}

/**
 * The source elements of one source list, spelled once per list: a container's
 * lists keep their identity from sync to sync (the desired state remembers
 * unchanged containers), so a sync spells only what changed.
 */
const spelled = new WeakMap<readonly Interval[], { readonly family: Family; readonly elements: string[] }>();

function sourceElements(family: Family, sources: readonly Interval[]): readonly string[] {
  const known = spelled.get(sources);
  if (known?.family === family) return known.elements;
  const elements = mergeIntervals(sources).map((interval) => intervalElement(family, interval));
  spelled.set(sources, { family, elements });
  return elements;
}

const WHOLE: Readonly<Record<Family, Interval>> = {
  4: { start: 0n, end: (1n << 32n) - 1n },
  6: { start: 0n, end: (1n << 128n) - 1n },
};

/** bound and boundallowed elements of the published bindings (host port . proto . host address). */
function bindingElements(desired: Pick<DesiredState, 'bindings'>, sets: Map<SetName, string[]>): void {
  for (const binding of desired.bindings) {
    // Open to everyone: no element, nothing in the chain drops it.
    if (binding.sources === 'any') continue;
    const family = binding.family;
    const address =
      binding.hostAddress === undefined
        ? intervalElement(family, WHOLE[family])
        : addressElement(family, binding.hostAddress);
    const target = `${portElement(binding.portFrom, binding.portTo)} . ${protocolElement(binding.protocol)} . ${address}`;
    const allowed = sets.get(family === 4 ? 'boundallowed4' : 'boundallowed6') ?? [];
    for (const source of sourceElements(family, binding.sources)) allowed.push(`${target} . ${source}`);
    sets.get(family === 4 ? 'bound4' : 'bound6')?.push(target);
  }
}

/** Record-set sizes nft accepts and a sync may ask for (0: off). */
export function checkedRecords(records: number): number {
  if (!Number.isInteger(records) || records < 0 || records > 1_048_576)
    throw new NftRenderError(`refusing to render a drop record size of ${records}`);
  return records;
}

/**
 * The verdict sets' elements for some rules and bindings, in no order. Only
 * these depend on the containers: a part's share of the table is this of its
 * rules and bindings alone.
 */
export function verdictElements(desired: Pick<DesiredState, 'rules' | 'bindings'>): Map<SetName, string[]> {
  const sets = new Map<SetName, string[]>(VERDICT_SETS.map((name) => [name, []]));
  bindingElements(desired, sets);
  for (const verdict of portVerdicts(desired)) {
    const target = `${verdict.address} . ${verdict.protocol} . ${portElement(verdict.portFrom, verdict.portTo)}`;
    const allowed = sets.get(verdict.family === 4 ? 'allowed4' : 'allowed6') ?? [];
    const guarded = sets.get(verdict.family === 4 ? 'guarded4' : 'guarded6') ?? [];
    if (verdict.sources === 'any') {
      // Allowed from anywhere: nothing to drop, like the iptables RETURN without -s.
      allowed.push(`${target} . ${intervalElement(verdict.family, WHOLE[verdict.family])}`);
      continue;
    }
    for (const source of sourceElements(verdict.family, verdict.sources))
      allowed.push(`${target} . ${source}`);
    guarded.push(target);
  }
  return sets;
}

export function tableSpec(desired: DesiredState, records: number = DEFAULT_DROP_RECORDS): TableSpec {
  const sets = new Map<SetName, string[]>([
    // Only the bridges Docker reports are "not outside"; the catch-all may also use wildcards.
    ['bridges', ifnameSet(desired.bridges)],
    ['dnatbridges', ifnameSet(['docker0', 'br-+', ...desired.bridges])],
    ...verdictElements(desired),
  ]);
  const outsideConfigured = desired.externalInterfaces.length > 0;
  if (outsideConfigured) sets.set('outside', ifnameSet(desired.externalInterfaces));
  for (const elements of sets.values()) elements.sort();
  const spec = { outsideConfigured, sets, records: checkedRecords(records) };
  return desired.bridgesUnknown === true ? { ...spec, bridgesUnknown: true } : spec;
}
