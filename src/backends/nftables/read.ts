// Reading the kernel: `nft -j list table inet dockfw` into chains, rule roles
// and set elements in the same canonical text elements.ts writes.
import type { Family } from '../../docker/snapshot.js';
import { FAMILY_BITS, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { CommandError, type CommandRunner } from '../command.js';
import { intervalElement, portElement } from './elements.js';
import { RECORD_SET_NAMES, TABLE_FAMILY, TABLE_NAME } from './names.js';

export interface ChainSeen {
  readonly type: string | undefined;
  readonly hook: string | undefined;
  readonly priority: number | undefined;
  readonly policy: string | undefined;
  /** The comment of each rule in order (undefined for a rule without one). */
  readonly rules: readonly (string | undefined)[];
}

export interface SetSeen {
  readonly type: readonly string[];
  readonly flags: readonly string[];
  readonly elements: readonly string[];
  /** Elements that could not be read back into canonical text. */
  readonly unreadable: number;
  /** `size` of the declaration, when it has one. */
  readonly size?: number;
  /** Default element timeout in seconds, when it has one. */
  readonly timeout?: number;
  /** Whether the declaration has `counter` (a counter per element). */
  readonly counter?: boolean;
}

export interface TableSeen {
  readonly chains: ReadonlyMap<string, ChainSeen>;
  readonly sets: ReadonlyMap<string, SetSeen>;
  /**
   * Why the table itself is not as dockfw makes it: a flag (`dormant` turns every
   * base chain off), or a listing nft could not print as JSON (nft 1.0.6 cuts its
   * JSON short at a table's flags). Only a whole-table write repairs it.
   */
  readonly damaged?: string;
}

const PROTOCOL_NUMBERS: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

type Json = unknown;

function record(value: Json): Record<string, Json> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, Json>)
    : undefined;
}

function parseFamilyAddress(family: Family, text: Json): bigint | undefined {
  if (typeof text !== 'string') return undefined;
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

function addressField(family: Family, value: Json): string | undefined {
  const single = parseFamilyAddress(family, value);
  if (single !== undefined) return intervalElement(family, { start: single, end: single });
  const prefix = record(record(value)?.prefix);
  if (prefix) {
    const base = parseFamilyAddress(family, prefix.addr);
    const len = prefix.len;
    const bits = FAMILY_BITS[family];
    if (base === undefined || typeof len !== 'number' || len < 0 || len > bits) return undefined;
    const size = 1n << BigInt(bits - len);
    return intervalElement(family, { start: base, end: base + size - 1n });
  }
  const range = record(value)?.range;
  if (Array.isArray(range)) {
    const start = parseFamilyAddress(family, range[0]);
    const end = parseFamilyAddress(family, range[1]);
    if (start === undefined || end === undefined || start > end) return undefined;
    return intervalElement(family, { start, end });
  }
  return undefined;
}

function portField(value: Json): string | undefined {
  try {
    if (typeof value === 'number') return portElement(value, value);
    const range = record(value)?.range;
    if (Array.isArray(range) && typeof range[0] === 'number' && typeof range[1] === 'number')
      return portElement(range[0], range[1]);
  } catch {
    return undefined;
  }
  return undefined;
}

/** Addresses repeat across elements (a container's ports, shared sources): spell each once per read. */
type AddressCache = Map<string, string | undefined>;

function cachedAddressField(family: Family, value: Json, cache: AddressCache): string | undefined {
  const prefix = record(record(value)?.prefix);
  const range = record(value)?.range;
  const key =
    typeof value === 'string'
      ? `${family} ${value}`
      : prefix
        ? `${family} ${String(prefix.addr)}/${String(prefix.len)}`
        : Array.isArray(range)
          ? `${family} ${String(range[0])}-${String(range[1])}`
          : undefined;
  if (key === undefined) return addressField(family, value);
  if (cache.has(key)) return cache.get(key);
  const text = addressField(family, value);
  cache.set(key, text);
  return text;
}

function field(type: string, value: Json, cache: AddressCache): string | undefined {
  switch (type) {
    case 'ipv4_addr':
      return cachedAddressField(4, value, cache);
    case 'ipv6_addr':
      return cachedAddressField(6, value, cache);
    case 'inet_proto':
      if (typeof value === 'number') return PROTOCOL_NUMBERS[value];
      return typeof value === 'string' && Object.values(PROTOCOL_NUMBERS).includes(value) ? value : undefined;
    case 'inet_service':
      return portField(value);
    case 'ifname':
      return typeof value === 'string' && /^[A-Za-z0-9_.+*-]{1,16}$/.test(value) ? `"${value}"` : undefined;
    default:
      return undefined;
  }
}

/** One element of `elem` in canonical text, or undefined when it is not one dockfw would write. */
export function elementText(
  types: readonly string[],
  raw: Json,
  cache: AddressCache = new Map(),
): string | undefined {
  // Elements with counters, timeouts or comments come wrapped: {"elem": {"val": …}}.
  const value = record(record(raw)?.elem)?.val ?? raw;
  const parts = types.length === 1 ? [value] : record(value)?.concat;
  if (!Array.isArray(parts) || parts.length !== types.length) return undefined;
  const texts = types.map((type, i) => field(type, parts[i], cache));
  return texts.every((t): t is string => t !== undefined) ? texts.join(' . ') : undefined;
}

/** Parses `nft -j list table …` output (only dockfw's table is looked at). */
export function parseTable(json: string): TableSeen {
  const root = record(JSON.parse(json) as Json);
  const items = Array.isArray(root?.nftables) ? root.nftables : [];
  const chains = new Map<string, ChainSeen>();
  const rules = new Map<string, (string | undefined)[]>();
  const sets = new Map<string, SetSeen>();
  const cache: AddressCache = new Map();
  const ours = (o: Record<string, Json>): boolean => o.family === TABLE_FAMILY && o.table === TABLE_NAME;
  let damaged: string | undefined;
  for (const item of items) {
    const entry = record(item);
    const table = record(entry?.table);
    if (table && table.family === TABLE_FAMILY && table.name === TABLE_NAME && table.flags !== undefined) {
      const flags = (Array.isArray(table.flags) ? table.flags : [table.flags]).map(String);
      if (flags.length > 0) damaged = `it has flags ${flags.join(', ')}`;
    }
    const chain = record(entry?.chain);
    const rule = record(entry?.rule);
    const set = record(entry?.set);
    if (chain && ours(chain) && typeof chain.name === 'string') {
      chains.set(chain.name, {
        type: typeof chain.type === 'string' ? chain.type : undefined,
        hook: typeof chain.hook === 'string' ? chain.hook : undefined,
        priority: typeof chain.prio === 'number' ? chain.prio : undefined,
        policy: typeof chain.policy === 'string' ? chain.policy : undefined,
        rules: [],
      });
    } else if (rule && ours(rule) && typeof rule.chain === 'string') {
      const list = rules.get(rule.chain) ?? [];
      list.push(typeof rule.comment === 'string' ? rule.comment : undefined);
      rules.set(rule.chain, list);
    } else if (set && ours(set) && typeof set.name === 'string') {
      const type = Array.isArray(set.type) ? set.type.map(String) : [String(set.type)];
      const flags = Array.isArray(set.flags) ? set.flags.map(String) : [];
      const raw = Array.isArray(set.elem) ? set.elem : [];
      // Drop records change with traffic: never compared, so not read here (`dockfw drops` reads them).
      const dynamic = (RECORD_SET_NAMES as readonly string[]).includes(set.name);
      const texts = dynamic ? [] : raw.map((e) => elementText(type, e, cache));
      const elements = texts.filter((t): t is string => t !== undefined).sort();
      const stmts = Array.isArray(set.stmt) ? set.stmt : [];
      sets.set(set.name, {
        type,
        flags,
        elements,
        unreadable: texts.length - elements.length,
        ...(typeof set.size === 'number' ? { size: set.size } : {}),
        ...(typeof set.timeout === 'number' ? { timeout: set.timeout } : {}),
        counter: stmts.some((st) => record(st)?.counter !== undefined),
      });
    }
  }
  for (const [name, chain] of chains) chains.set(name, { ...chain, rules: rules.get(name) ?? [] });
  return damaged === undefined ? { chains, sets } : { chains, sets, damaged };
}

/**
 * dockfw's chains (no rules) and the named sets as the kernel has them: what
 * can be listed without nft loading every element of the table (listing a
 * chain's rules does: seconds at 5,000 containers).
 */
export async function readChainsAndSets(run: CommandRunner, names: readonly string[]): Promise<TableSeen> {
  const { stdout } = await run('nft', ['-j', 'list', 'chains', TABLE_FAMILY]);
  const { chains } = parseTable(stdout);
  const sets = new Map<string, SetSeen>();
  for (const name of names) {
    try {
      const listed = await run('nft', ['-j', 'list', 'set', TABLE_FAMILY, TABLE_NAME, name]);
      const set = parseTable(listed.stdout).sets.get(name);
      if (set !== undefined) sets.set(name, set);
    } catch (error) {
      if (error instanceof CommandError && !error.missing && /No such file or directory/.test(error.stderr))
        continue;
      throw error;
    }
  }
  return { chains, sets };
}

/** dockfw's table as the kernel has it, or undefined when there is none. */
export async function readTable(run: CommandRunner): Promise<TableSeen | undefined> {
  let terse: TableSeen;
  try {
    // Terse: declarations without elements, so the drop records (up to the cap, megabytes
    // of JSON under a scan) are never listed; each compared set is listed on its own below.
    const { stdout } = await run('nft', ['-j', '-t', 'list', 'table', TABLE_FAMILY, TABLE_NAME]);
    try {
      terse = parseTable(stdout);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      // Unreadable: written whole again (it can only close what it opens).
      return { chains: new Map(), sets: new Map(), damaged: 'its listing is not valid JSON (a table flag?)' };
    }
  } catch (error) {
    if (error instanceof CommandError && !error.missing && /No such file or directory/.test(error.stderr))
      return undefined;
    throw error;
  }
  const compared = [...terse.sets.keys()].filter(
    (name) => !(RECORD_SET_NAMES as readonly string[]).includes(name),
  );
  const listed = await Promise.all(
    compared.map(async (name) => {
      try {
        const { stdout } = await run('nft', ['-j', 'list', 'set', TABLE_FAMILY, TABLE_NAME, name]);
        return parseTable(stdout).sets.get(name);
      } catch (error) {
        // Deleted between the two reads: as if absent (the sync then rewrites the table).
        if (error instanceof CommandError && !error.missing && /No such file or directory/.test(error.stderr))
          return undefined;
        throw error;
      }
    }),
  );
  const sets = new Map(terse.sets);
  compared.forEach((name, i) => {
    const set = listed[i];
    if (set === undefined) sets.delete(name);
    else sets.set(name, set);
  });
  return terse.damaged === undefined
    ? { chains: terse.chains, sets }
    : { chains: terse.chains, sets, damaged: terse.damaged };
}
