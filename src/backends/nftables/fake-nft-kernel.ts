// A stateful fake of `nft` for unit tests: it keeps `table inet dockfw` in
// memory, applies `nft -f -` batches atomically (all or nothing) and rejects
// what the kernel rejects: unknown syntax, a missing table, set or jump target,
// an element of the wrong shape, an overlapping interval, deleting an element
// that is not there. `-j list table` / `-j list set` answer in the shape the
// kernel prints (see test/fixtures/nftables.multi-network.list.json).
import { FAMILY_BITS, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { CommandError, type CommandRunner } from '../command.js';
import { jsonElement } from './fake-nft.js';
import { TABLE_FAMILY, TABLE_NAME } from './names.js';

interface FakeSet {
  readonly type: readonly string[];
  readonly flags: readonly string[];
  readonly size?: number;
  readonly timeout?: number;
  readonly counter: boolean;
  /** Element text (as written) → its per-field closed ranges. */
  readonly elements: Map<string, readonly Range[]>;
}

interface FakeRule {
  readonly text: string;
  readonly comment: string | undefined;
}

interface FakeChain {
  readonly base?: {
    readonly type: string;
    readonly hook: string;
    readonly prio: number;
    readonly policy: string;
  };
  readonly rules: FakeRule[];
}

interface FakeTable {
  readonly sets: Map<string, FakeSet>;
  readonly chains: Map<string, FakeChain>;
}

type Range = readonly [bigint, bigint];

/** Rejected by the "kernel": the message nft prints, blamed on the payload line. */
class Rejection extends Error {}

const PROTOCOLS: Readonly<Record<string, bigint>> = { tcp: 6n, udp: 17n, sctp: 132n };
const IFNAME_BYTES = 16;

function ifnameRange(text: string): Range {
  const quoted = /^"([A-Za-z0-9_.+-]{0,15})(\*?)"$/.exec(text) ?? /^([A-Za-z0-9_.+-]{1,15})(\*?)$/.exec(text);
  if (!quoted) throw new Rejection(`syntax error, unexpected ${text}`);
  const name = quoted[1] ?? '';
  const wildcard = quoted[2] === '*';
  if (!wildcard && name === '') throw new Rejection('syntax error, empty interface name');
  const pad = (fill: number): bigint => {
    let value = 0n;
    for (let i = 0; i < IFNAME_BYTES; i++)
      value = (value << 8n) | BigInt(i < name.length ? name.charCodeAt(i) : fill);
    return value;
  };
  return wildcard ? [pad(0), pad(0xff)] : [pad(0), pad(0)];
}

function addressRange(family: 4 | 6, text: string): Range {
  const parse = (t: string): bigint => {
    const value = family === 4 ? parseIPv4(t) : parseIPv6(t);
    if (value === undefined) throw new Rejection(`Could not resolve hostname: ${t}`);
    return value;
  };
  const bits = FAMILY_BITS[family];
  if (text.includes('/')) {
    const [addr = '', len = ''] = text.split('/');
    const prefix = Number(len);
    if (!/^\d+$/.test(len) || prefix > bits) throw new Rejection(`invalid prefix length ${len}`);
    const size = 1n << BigInt(bits - prefix);
    const base = parse(addr);
    return [base - (base % size), base - (base % size) + size - 1n];
  }
  const dash = text.indexOf('-');
  if (dash < 0) {
    const value = parse(text);
    return [value, value];
  }
  const range: Range = [parse(text.slice(0, dash)), parse(text.slice(dash + 1))];
  if (range[0] > range[1]) throw new Rejection(`Range has zero or negative size: ${text}`);
  return range;
}

function serviceRange(text: string): Range {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const from = Number(match?.[1]);
  const to = Number(match?.[2] ?? match?.[1]);
  if (!match || from > 65535 || to > 65535) throw new Rejection(`Could not resolve service: ${text}`);
  if (from > to) throw new Rejection(`Range has zero or negative size: ${text}`);
  return [BigInt(from), BigInt(to)];
}

function fieldRange(type: string, text: string): Range {
  switch (type) {
    case 'ifname':
      return ifnameRange(text);
    case 'ipv4_addr':
      return addressRange(4, text);
    case 'ipv6_addr':
      return addressRange(6, text);
    case 'inet_proto': {
      const number = PROTOCOLS[text];
      if (number === undefined) throw new Rejection(`Could not resolve protocol name: ${text}`);
      return [number, number];
    }
    case 'inet_service':
      return serviceRange(text);
    default:
      throw new Rejection(`unknown datatype ${type}`);
  }
}

/** An element's per-field ranges; a range where the set has no interval flag is refused. */
function elementRanges(set: FakeSet, text: string): readonly Range[] {
  const parts = text.split(' . ').map((p) => p.trim());
  if (parts.length !== set.type.length)
    throw new Rejection(
      `datatype mismatch, expected ${set.type.join(' . ')}, expression has ${parts.length} fields`,
    );
  const ranges = parts.map((part, i) => fieldRange(set.type[i] ?? '', part));
  if (!set.flags.includes('interval') && ranges.some(([lo, hi]) => lo !== hi))
    throw new Rejection(
      "You must add 'flags interval' to your set declaration if you want to store intervals",
    );
  return ranges;
}

const same = (a: readonly Range[], b: readonly Range[]): boolean =>
  a.every((r, i) => r[0] === b[i]?.[0] && r[1] === b[i]?.[1]);
const overlap = (a: readonly Range[], b: readonly Range[]): boolean =>
  a.every((r, i) => {
    const o = b[i];
    return o !== undefined && r[0] <= o[1] && o[0] <= r[1];
  });

const inside = (point: readonly bigint[], box: readonly Range[]): boolean =>
  box.every((r, i) => {
    const p = point[i];
    return p !== undefined && r[0] <= p && p <= r[1];
  });

/**
 * Whether an interval element may not join one held. One field (nft's own
 * check): any overlap. Concatenations (the kernel's pipapo set): only when the
 * new element's first or last point lies inside the held one; other overlaps
 * are taken.
 */
function clashes(held: readonly Range[], added: readonly Range[]): boolean {
  if (added.length === 1) return overlap(held, added);
  return (
    inside(
      added.map((r) => r[0]),
      held,
    ) ||
    inside(
      added.map((r) => r[1]),
      held,
    )
  );
}

function addElement(set: FakeSet, text: string): void {
  const ranges = elementRanges(set, text);
  for (const [, existing] of set.elements) {
    if (same(existing, ranges)) return; // `add` of an element already there is no error
    if (set.flags.includes('interval') && clashes(existing, ranges))
      throw new Rejection(`interval overlaps with an existing one: ${text}`);
  }
  if (set.size !== undefined && set.elements.size >= set.size)
    throw new Rejection('Could not process rule: No space left on device');
  set.elements.set(text, ranges);
}

function deleteElement(set: FakeSet, text: string): void {
  const ranges = elementRanges(set, text);
  for (const [key, existing] of set.elements) {
    if (same(existing, ranges)) {
      set.elements.delete(key);
      return;
    }
  }
  throw new Rejection(`Could not process rule: No such file or directory: ${text}`);
}

/** The words a dockfw rule may use; anything else is a syntax error, as nft's parser would say. */
const RULE_WORDS = new Set([
  'ip',
  'ip6',
  'daddr',
  'saddr',
  'meta',
  'l4proto',
  'th',
  'dport',
  '.',
  '!=',
  'iifname',
  'oifname',
  'iif',
  'oif',
  'return',
  'drop',
  'accept',
  'jump',
  'counter',
  'ct',
  'state',
  'established',
  'direction',
  'original',
  'reply',
  'status',
  'dnat',
  'fib',
  'type',
  'unicast',
  'exists',
  'update',
  '{',
  '}',
  'lo',
]);

function checkRule(table: FakeTable, text: string): void {
  const tokens = text.split(/\s+/).filter((t) => t !== '');
  if (tokens.length === 0) throw new Rejection('syntax error, empty rule');
  tokens.forEach((token, i) => {
    if (token.startsWith('@')) {
      const set = table.sets.get(token.slice(1));
      if (!set) throw new Rejection(`Set '${token.slice(1)}' does not exist`);
      const types = tokens[i - 1] === 'update' ? keyTypes(tokens, i + 2, 1) : keyTypes(tokens, i - 1, -1);
      if (types.join(' . ') !== set.type.join(' . '))
        throw new Rejection(
          `datatype mismatch, expected ${set.type.join(' . ')}, expression has type ${types.join(' . ')}`,
        );
    } else if (tokens[i - 1] === 'jump') {
      if (!table.chains.has(token)) throw new Rejection(`Could not process rule: No such file or directory`);
      if (table.chains.get(token)?.base)
        throw new Rejection('Could not process rule: Operation not supported');
    } else if (!RULE_WORDS.has(token) && !/^"[A-Za-z0-9_.+*-]+"$/.test(token)) {
      throw new Rejection(`syntax error, unexpected ${token}`);
    }
  });
}

/** The datatype of each selector a rule's rules use. */
const SELECTOR_TYPES: Readonly<Record<string, string>> = {
  'ip daddr': 'ipv4_addr',
  'ip saddr': 'ipv4_addr',
  'ip6 daddr': 'ipv6_addr',
  'ip6 saddr': 'ipv6_addr',
  'meta l4proto': 'inet_proto',
  'th dport': 'inet_service',
  iifname: 'ifname',
  oifname: 'ifname',
};

/**
 * The types of the `a . b . c` key next to a set reference: read backwards from
 * `at` (a lookup: `KEY [!=] @set`) or forwards (an update: `@set { KEY }`).
 */
function keyTypes(tokens: readonly string[], at: number, step: 1 | -1): string[] {
  const types: string[] = [];
  let i = at;
  if (step === -1 && tokens[i] === '!=') i--;
  for (;;) {
    const one = tokens[i] ?? '';
    const two = step === 1 ? `${one} ${tokens[i + 1] ?? ''}` : `${tokens[i - 1] ?? ''} ${one}`;
    const type = SELECTOR_TYPES[two] ?? SELECTOR_TYPES[one];
    if (type === undefined) break;
    types.push(type);
    i += SELECTOR_TYPES[two] === undefined ? step : 2 * step;
    if (tokens[i] !== '.') break;
    i += step;
  }
  return step === 1 ? types : types.reverse();
}

/** `TEXT comment "C"` → the rule text and its comment. */
function parseRule(line: string): FakeRule {
  const match = /^(.*?)\s+comment\s+"([^"]*)"$/.exec(line);
  return match ? { text: match[1] ?? '', comment: match[2] } : { text: line, comment: undefined };
}

function cloneTable(table: FakeTable): FakeTable {
  return {
    sets: new Map([...table.sets].map(([n, s]) => [n, { ...s, elements: new Map(s.elements) }])),
    chains: new Map([...table.chains].map(([n, c]) => [n, { ...c, rules: [...c.rules] }])),
  };
}

const emptyTable = (): FakeTable => ({ sets: new Map(), chains: new Map() });
const TABLE_WORDS = `${TABLE_FAMILY} ${TABLE_NAME}`;

/** Splits `{ a, b }` element lists. */
function elementList(body: string): string[] {
  return body
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

/** Applies one batch to a copy of `start`; throws a Rejection (with its line) at the first error. */
function applyBatch(start: FakeTable | undefined, payload: string): FakeTable | undefined {
  let table = start && cloneTable(start);
  const lines = payload.split('\n');
  let n = 0;
  const fail = (error: unknown): never => {
    const message = error instanceof Error ? error.message : String(error);
    throw new Rejection(`/dev/stdin:${n}:1-${(lines[n - 1] ?? '').length}: Error: ${message}`);
  };
  const need = (): FakeTable =>
    table ?? fail(new Rejection('Could not process rule: No such file or directory'));
  const next = (): string | undefined => {
    while (n < lines.length) {
      const line = (lines[n++] ?? '').trim();
      if (line !== '' && !line.startsWith('#')) return line;
    }
    return undefined;
  };
  const ours = (words: string): boolean => words === TABLE_WORDS;
  const readSet = (t: FakeTable, name: string): void => {
    let type: string[] | undefined;
    let flags: string[] = [];
    let size: number | undefined;
    let timeout: number | undefined;
    let counter = false;
    const texts: { text: string; line: number }[] = [];
    for (;;) {
      const line = next() ?? fail(new Rejection('syntax error, unexpected end of file'));
      if (line === '}') break;
      let m: RegExpExecArray | null;
      if ((m = /^type (.+)$/.exec(line))) type = (m[1] ?? '').split(' . ');
      else if ((m = /^flags ([a-z,]+)$/.exec(line))) flags = (m[1] ?? '').split(',');
      else if ((m = /^size (\d+)$/.exec(line))) size = Number(m[1]);
      else if ((m = /^timeout (\d+)s$/.exec(line))) timeout = Number(m[1]);
      else if (line === 'counter') counter = true;
      else if ((m = /^elements = \{(.*)\}$/.exec(line)))
        texts.push(...elementList(m[1] ?? '').map((text) => ({ text, line: n })));
      else if (line === 'elements = {') {
        for (;;) {
          const e = next() ?? fail(new Rejection('syntax error, unexpected end of file'));
          if (e === '}') break;
          texts.push(...elementList(e).map((text) => ({ text, line: n })));
        }
      } else fail(new Rejection(`syntax error, unexpected ${line.split(' ')[0] ?? line}`));
    }
    if (type === undefined) fail(new Rejection(`set ${name} needs a type`));
    const known = new Set(['interval', 'dynamic', 'timeout', 'constant']);
    if (flags.some((f) => !known.has(f)))
      fail(new Rejection(`syntax error, unexpected flag ${flags.join(',')}`));
    const existing = t.sets.get(name);
    if (existing && existing.type.join(' . ') !== (type ?? []).join(' . '))
      fail(new Rejection('Could not process rule: File exists'));
    const set: FakeSet = existing ?? {
      type: type ?? [],
      flags,
      counter,
      elements: new Map(),
      ...(size === undefined ? {} : { size }),
      ...(timeout === undefined ? {} : { timeout }),
    };
    (type ?? []).forEach((ty) => {
      try {
        fieldRange(
          ty,
          ty === 'inet_proto'
            ? 'tcp'
            : ty === 'inet_service'
              ? '1'
              : ty === 'ifname'
                ? 'x'
                : ty === 'ipv4_addr'
                  ? '0.0.0.0'
                  : '::',
        );
      } catch {
        fail(new Rejection(`unknown datatype ${ty}`));
      }
    });
    t.sets.set(name, set);
    for (const { text, line } of texts) {
      try {
        addElement(set, text);
      } catch (error) {
        n = line;
        fail(error);
      }
    }
  };
  const readChain = (t: FakeTable, name: string): void => {
    const chain: FakeChain = t.chains.get(name) ?? { rules: [] };
    let base = chain.base;
    const rules: FakeRule[] = [];
    const at: number[] = [];
    for (;;) {
      const line = next() ?? fail(new Rejection('syntax error, unexpected end of file'));
      if (line === '}') break;
      const m =
        /^type (filter|nat|route) hook (prerouting|input|forward|output|postrouting) priority (-?\d+); policy (accept|drop);$/.exec(
          line,
        );
      if (m) base = { type: m[1] ?? '', hook: m[2] ?? '', prio: Number(m[3]), policy: m[4] ?? '' };
      else if (line.startsWith('type ')) fail(new Rejection('syntax error in chain type'));
      else {
        rules.push(parseRule(line));
        at.push(n);
      }
    }
    t.chains.set(name, { ...(base ? { base } : {}), rules: [...chain.rules, ...rules] });
    // Rules are checked once the chain exists (a rule may not jump to a base chain, nor to a missing one).
    rules.forEach((rule, i) => {
      try {
        checkRule(t, rule.text);
      } catch (error) {
        n = at[i] ?? n;
        fail(error);
      }
    });
  };
  for (let line = next(); line !== undefined; line = next()) {
    let m: RegExpExecArray | null;
    try {
      if ((m = /^add table (\S+ \S+)$/.exec(line)) && ours(m[1] ?? '')) table ??= emptyTable();
      else if ((m = /^delete table (\S+ \S+)$/.exec(line)) && ours(m[1] ?? '')) {
        need();
        table = undefined;
      } else if ((m = /^table (\S+ \S+) \{$/.exec(line)) && ours(m[1] ?? '')) {
        const t = (table ??= emptyTable());
        for (let inner = next(); inner !== '}'; inner = next()) {
          if (inner === undefined) fail(new Rejection('syntax error, unexpected end of file'));
          let b: RegExpExecArray | null;
          if ((b = /^set ([a-z0-9_]+) \{$/.exec(inner ?? ''))) readSet(t, b[1] ?? '');
          else if ((b = /^chain ([a-z0-9_]+) \{$/.exec(inner ?? ''))) readChain(t, b[1] ?? '');
          else fail(new Rejection(`syntax error, unexpected ${inner ?? ''}`));
        }
      } else if (
        (m = /^(add|delete) element (\S+ \S+) ([a-z0-9_]+) \{(.*)\}$/.exec(line)) &&
        ours(m[2] ?? '')
      ) {
        const set = need().sets.get(m[3] ?? '');
        if (!set) throw new Rejection(`Could not process rule: No such file or directory: set ${m[3] ?? ''}`);
        for (const text of elementList(m[4] ?? '')) (m[1] === 'add' ? addElement : deleteElement)(set, text);
      } else if ((m = /^flush set (\S+ \S+) ([a-z0-9_]+)$/.exec(line)) && ours(m[1] ?? '')) {
        const set = need().sets.get(m[2] ?? '');
        if (!set) throw new Rejection('Could not process rule: No such file or directory');
        set.elements.clear();
      } else if ((m = /^flush chain (\S+ \S+) ([a-z0-9_]+)$/.exec(line)) && ours(m[1] ?? '')) {
        const chain = need().chains.get(m[2] ?? '');
        if (!chain) throw new Rejection('Could not process rule: No such file or directory');
        chain.rules.length = 0;
      } else if ((m = /^(add|insert) rule (\S+ \S+) ([a-z0-9_]+) (.+)$/.exec(line)) && ours(m[2] ?? '')) {
        const t = need();
        const chain = t.chains.get(m[3] ?? '');
        if (!chain) throw new Rejection('Could not process rule: No such file or directory');
        const rule = parseRule(m[4] ?? '');
        checkRule(t, rule.text);
        if (m[1] === 'add') chain.rules.push(rule);
        else chain.rules.unshift(rule);
      } else throw new Rejection(`syntax error, unexpected ${line.split(' ')[0] ?? line}`);
    } catch (error) {
      if (error instanceof Rejection && error.message.startsWith('/dev/stdin:')) throw error;
      fail(error);
    }
  }
  return table;
}

function notFound(file: string, args: readonly string[]): CommandError {
  const stderr = `Error: No such file or directory\n${args.filter((a) => a !== '-j' && a !== '-t').join(' ')}\n`;
  return new CommandError('nft failed', file, args, stderr, false);
}

export class FakeNftKernel {
  private table: FakeTable | undefined;
  /** Payloads dockfw's `nft -f -` applied, in order (rejected ones are not here). */
  readonly writes: string[] = [];
  /** Payloads `nft -f -` refused, in order. */
  readonly rejected: string[] = [];
  /** Called after each applied write (e.g. to emit an `nft monitor` line). */
  onWrite: (() => void) | undefined;

  readonly run: CommandRunner = (file, args, input) => {
    if (file !== 'nft') return Promise.reject(new CommandError(`${file} not found`, file, args, '', true));
    if (args[0] === '-f' && args[1] === '-') {
      try {
        this.apply(input ?? '');
      } catch (error) {
        const stderr = `${error instanceof Error ? error.message : String(error)}\n`;
        return Promise.reject(new CommandError('nft failed', file, args, stderr, false));
      }
      this.writes.push(input ?? '');
      this.onWrite?.();
      return Promise.resolve({ stdout: '' });
    }
    const words = args.filter((a) => a !== '-j' && a !== '-t');
    const terse = args.includes('-t');
    // Every chain of the family's tables, no rules: an empty list when there is no table.
    if (args.includes('-j') && words.join(' ') === `list chains ${TABLE_FAMILY}`)
      return Promise.resolve({ stdout: this.listChains() });
    if (!args.includes('-j') || words[0] !== 'list' || `${words[2]} ${words[3]}` !== TABLE_WORDS)
      return Promise.reject(new CommandError('nft failed', file, args, 'Error: syntax error\n', false));
    if (this.table === undefined) return Promise.reject(notFound(file, args));
    if (words[1] === 'table' && words.length === 4) return Promise.resolve({ stdout: this.list(terse) });
    if (words[1] === 'set' && words.length === 5) {
      const name = words[4] ?? '';
      if (!this.table.sets.has(name)) return Promise.reject(notFound(file, args));
      return Promise.resolve({ stdout: this.list(terse, name) });
    }
    return Promise.reject(new CommandError('nft failed', file, args, 'Error: syntax error\n', false));
  };

  /** Applies `payload` as `nft -f -` would (all or nothing); throws nft's error text when refused. */
  apply(payload: string): void {
    try {
      this.table = applyBatch(this.table, payload);
    } catch (error) {
      this.rejected.push(payload);
      throw error;
    }
  }

  /** Someone else's `nft -f -` (outside damage): applied the same way, not counted as dockfw's write. */
  outside(payload: string): void {
    this.apply(payload);
  }

  get exists(): boolean {
    return this.table !== undefined;
  }

  /** A chain's rule comments in order; undefined when the chain (or table) is absent. */
  chain(name: string): (string | undefined)[] | undefined {
    return this.table?.chains.get(name)?.rules.map((r) => r.comment);
  }

  /** A set's element texts, sorted; undefined when absent. */
  elements(name: string): string[] | undefined {
    const set = this.table?.sets.get(name);
    return set && [...set.elements.keys()].sort();
  }

  private listChains(): string {
    const items: unknown[] = [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }];
    let handle = 1;
    for (const [name, chain] of this.table?.chains ?? [])
      items.push({
        chain: { family: TABLE_FAMILY, table: TABLE_NAME, name, handle: handle++, ...(chain.base ?? {}) },
      });
    return JSON.stringify({ nftables: items });
  }

  private list(terse: boolean, only?: string): string {
    const table = this.table ?? emptyTable();
    const base = { family: TABLE_FAMILY, table: TABLE_NAME };
    let handle = 1;
    const items: unknown[] = [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }];
    if (only === undefined)
      items.push({ table: { family: TABLE_FAMILY, name: TABLE_NAME, handle: handle++ } });
    for (const [name, set] of table.sets) {
      if (only !== undefined && name !== only) continue;
      const elem = [...set.elements.keys()].map((text) => {
        const value = jsonElement(set.type, text);
        return set.counter ? { elem: { val: value, counter: { packets: 0, bytes: 0 } } } : value;
      });
      items.push({
        set: {
          ...base,
          name,
          type: set.type.length === 1 ? set.type[0] : set.type,
          handle: handle++,
          ...(set.size === undefined ? {} : { size: set.size }),
          // The kernel keeps `dynamic` but does not list it.
          flags: set.flags.filter((f) => f !== 'dynamic'),
          ...(set.timeout === undefined ? {} : { timeout: set.timeout }),
          ...(set.counter ? { stmt: [{ counter: null }] } : {}),
          ...(terse || elem.length === 0 ? {} : { elem }),
        },
      });
    }
    if (only === undefined) {
      for (const [name, chain] of table.chains)
        items.push({ chain: { ...base, name, handle: handle++, ...(chain.base ?? {}) } });
      for (const [name, chain] of table.chains)
        for (const rule of chain.rules)
          items.push({
            rule: {
              ...base,
              chain: name,
              handle: handle++,
              ...(rule.comment === undefined ? {} : { comment: rule.comment }),
              expr: [],
            },
          });
    }
    return JSON.stringify({ nftables: items });
  }
}
