// TableSpec → `nft -f -` payloads (pure). The rules are fixed; only set
// elements carry per-container data, so a packet costs the same few lookups
// whatever the number of containers. The layout is specified in docs/design.md.
import type { TableSpec } from './elements.js';
import {
  BASE_CHAINS,
  PRE_CHAIN,
  RECORD_CHAINS,
  RECORD_SET_TYPES,
  RECORD_SETS,
  RECORD_TIMEOUT_SECONDS,
  SET_NAMES,
  SET_TYPES,
  TABLE,
  type SetName,
} from './names.js';

/** What the fixed rules depend on. */
export type RuleShape = Pick<TableSpec, 'outsideConfigured' | 'records' | 'bridgesUnknown' | 'fastPath'>;

function recording(spec: RuleShape): boolean {
  return (spec.records ?? 0) > 0;
}

/** The verdict of a drop rule: straight `drop`, or via the family's record chain. */
function dropVerdict(spec: RuleShape, family: 4 | 6): string {
  return recording(spec) ? `jump ${RECORD_CHAINS[family]}` : 'drop';
}

/** One rule of the base chain. Its comment names its role; reading compares roles in order. */
export interface ChainRule {
  readonly role: string;
  readonly text: string;
}

export function ruleComment(role: string): string {
  return `dockfw ${role}`;
}

/**
 * Packets that are not from outside leave the chain at once. `@bridges` holds
 * only Docker's reported bridges. Roles are unique in the table: `prefix` tells
 * the chains apart.
 */
function entryRules(spec: RuleShape, prefix = ''): ChainRule[] {
  return spec.outsideConfigured
    ? [{ role: `${prefix}not-outside`, text: 'iifname != @outside return' }]
    : [
        { role: `${prefix}loopback`, text: 'iifname "lo" return' },
        { role: `${prefix}from-bridge`, text: 'iifname @bridges return' },
      ];
}

/**
 * The fast path (only where revoked connections are cut, see
 * src/backends/revocation.ts): a packet in the original direction of a
 * connection conntrack has seen answered skips the lookups. Such an entry exists
 * only once a first packet passed every hook; the entries of flows admitted
 * earlier (before a revocation, while dockfw was down) are deleted by the cut.
 * Not `related` (an expectation admits the first packet of a new connection),
 * not the reply direction (a connection picked up mid-stream from the server's
 * side makes the client's packets replies), and only packets arriving where the
 * route back to their source leaves (a source spoofed from outside into a
 * connection between containers is judged).
 */
function fastPathRules(spec: RuleShape, prefix = ''): ChainRule[] {
  return spec.fastPath === true
    ? [
        {
          role: `${prefix}established`,
          text: 'ct state established ct direction original fib saddr . iif oif exists return',
        },
      ]
    : [];
}

/**
 * Replies to connections opened from the host or a container leave the chain.
 * With the fast path, not those to a guarded target: once the cut deleted an
 * entry, the server's next packet makes a new one in its own direction, and the
 * cut client's packets would pass as its replies.
 */
function replyRules(
  spec: RuleShape,
  prefix: string,
  sets: { 4: string; 6: string },
  key: (ip: 'ip' | 'ip6') => string,
): ChainRule[] {
  if (spec.fastPath !== true) return [{ role: `${prefix}replies`, text: 'ct direction reply return' }];
  return [
    { role: `${prefix}replies4`, text: `ct direction reply ${key('ip')} != @${sets[4]} return` },
    { role: `${prefix}replies6`, text: `ct direction reply ${key('ip6')} != @${sets[6]} return` },
  ];
}

/** The key of a guarded target: container address . proto . container port. */
const targetKey = (ip: 'ip' | 'ip6'): string => `${ip} daddr . meta l4proto . th dport`;
/** The key of a published binding: host port first (see SET_TYPES) . proto . host address. */
const bindingKey = (ip: 'ip' | 'ip6'): string => `th dport . meta l4proto . ${ip} daddr`;

/**
 * The prerouting chain's rules: each published binding (host address, or every
 * local address, and host port) lets its allowed sources on and drops the rest,
 * before Docker's DNAT or docker-proxy sees the packet.
 */
export function publishedRules(spec: RuleShape): ChainRule[] {
  return [
    ...fastPathRules(spec, 'pre-'),
    ...entryRules(spec, 'pre-'),
    ...replyRules(spec, 'pre-', { 4: 'bound4', 6: 'bound6' }, bindingKey),
    // Only packets routed on to another unicast address carry no binding; local,
    // broadcast, multicast and anycast ones do (docker-proxy's UDP sockets take them).
    { role: 'routed-on', text: 'fib daddr type unicast return' },
    {
      role: 'bound-allowed4',
      text: `${bindingKey('ip')} . ip saddr @boundallowed4 return`,
    },
    {
      role: 'bound-allowed6',
      text: `${bindingKey('ip6')} . ip6 saddr @boundallowed6 return`,
    },
    { role: 'bound4', text: `${bindingKey('ip')} @bound4 counter ${dropVerdict(spec, 4)}` },
    { role: 'bound6', text: `${bindingKey('ip6')} @bound6 counter ${dropVerdict(spec, 6)}` },
  ];
}

/** The rules of a base chain by name, in order. */
export function rulesOf(chain: string, spec: RuleShape): ChainRule[] {
  if (chain === RECORD_CHAINS[4]) return recordRules(4);
  if (chain === RECORD_CHAINS[6]) return recordRules(6);
  return chain === PRE_CHAIN ? publishedRules(spec) : chainRules(spec);
}

/**
 * A record chain: note destination . proto . port . source in the family's
 * record set (a new element, or its counter and timeout refreshed), then drop.
 * When the set is full the update ends its rule without recording; the next
 * rule drops all the same.
 */
export function recordRules(family: 4 | 6): ChainRule[] {
  const ip = family === 4 ? 'ip' : 'ip6';
  return [
    {
      role: `record${family}`,
      text: `update @${RECORD_SETS[family]} { ${ip} daddr . meta l4proto . th dport . ${ip} saddr }`,
    },
    { role: `drop${family}`, text: 'drop' },
  ];
}

/** The regular chains of the table (none without records). */
export function regularChains(spec: RuleShape): string[] {
  return recording(spec) ? [RECORD_CHAINS[4], RECORD_CHAINS[6]] : [];
}

/** The forward chain's rules, in order. Depends only on whether outside interfaces are configured. */
export function chainRules(spec: RuleShape): ChainRule[] {
  return [
    ...fastPathRules(spec),
    ...entryRules(spec),
    // Replies to connections the containers opened themselves.
    ...replyRules(spec, '', { 4: 'guarded4', 6: 'guarded6' }, targetKey),
    { role: 'allowed4', text: `${targetKey('ip')} . ip saddr @allowed4 return` },
    { role: 'allowed6', text: `${targetKey('ip6')} . ip6 saddr @allowed6 return` },
    {
      role: 'guarded4',
      text: `${targetKey('ip')} @guarded4 counter ${dropVerdict(spec, 4)}`,
    },
    {
      role: 'guarded6',
      text: `${targetKey('ip6')} @guarded6 counter ${dropVerdict(spec, 6)}`,
    },
    // Fail closed: a published port of a container dockfw has not judged yet
    // (`@dnatbridges` also holds docker0 and br-*: a wildcard that closes is safe).
    // Its own role when the bridges are unknown, so the first sync rewrites it.
    spec.bridgesUnknown === true
      ? { role: 'catch-all-every-interface', text: 'ct status dnat counter drop' }
      : { role: 'catch-all', text: 'ct status dnat oifname @dnatbridges counter drop' },
  ];
}

function setLines(name: SetName, elements: readonly string[]): string[] {
  const head = [`\tset ${name} {`, `\t\ttype ${SET_TYPES[name].join(' . ')}`, '\t\tflags interval'];
  const body =
    elements.length === 0
      ? []
      : [
          '\t\telements = {',
          ...elements.map((e, i) => `\t\t\t${e}${i < elements.length - 1 ? ',' : ''}`),
          '\t\t}',
        ];
  return [...head, ...body, '\t}'];
}

/** A record set's declaration: dynamic, one timeout, a counter per element, bounded. */
function recordSetLines(family: 4 | 6, size: number): string[] {
  const name = RECORD_SETS[family];
  return [
    `\tset ${name} {`,
    `\t\ttype ${RECORD_SET_TYPES[name].join(' . ')}`,
    `\t\tsize ${size}`,
    '\t\tflags dynamic,timeout',
    `\t\ttimeout ${RECORD_TIMEOUT_SECONDS}s`,
    '\t\tcounter',
    '\t}',
  ];
}

/**
 * The whole table in one transaction: `add` then `delete` makes the delete
 * succeed whether or not the table exists, and the new table replaces it
 * atomically (no moment without rules).
 */
export function renderTablePayload(spec: TableSpec): string {
  const sets = SET_NAMES.filter((name) => spec.sets.has(name)).flatMap((name) =>
    setLines(name, spec.sets.get(name) ?? []),
  );
  const records = spec.records ?? 0;
  const recordSets = records > 0 ? [...recordSetLines(4, records), ...recordSetLines(6, records)] : [];
  const rules = (name: string): string[] =>
    rulesOf(name, spec).map((r) => `\t\t${r.text} comment "${ruleComment(r.role)}"`);
  // Regular chains first: a base chain's jump must name a chain that exists.
  const regular = regularChains(spec).flatMap((name) => [`\tchain ${name} {`, ...rules(name), '\t}']);
  const chains = BASE_CHAINS.flatMap((chain) => [
    `\tchain ${chain.name} {`,
    `\t\ttype filter hook ${chain.hook} priority ${chain.priority}; policy accept;`,
    ...rules(chain.name),
    '\t}',
  ]);
  const lines = [
    `add table ${TABLE}`,
    `delete table ${TABLE}`,
    `table ${TABLE} {`,
    ...sets,
    ...recordSets,
    ...regular,
    ...chains,
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** Per set: elements to delete and to add. */
export interface ElementChanges {
  readonly set: SetName;
  readonly add: readonly string[];
  readonly delete: readonly string[];
}

/** Only what changed, in one transaction: every delete first, so a changed element can come back. */
export function renderElementPayload(changes: readonly ElementChanges[]): string {
  const statement = (verb: string, set: SetName, elements: readonly string[]): string[] =>
    elements.length === 0 ? [] : [`${verb} element ${TABLE} ${set} { ${elements.join(', ')} }`];
  const lines = [
    ...changes.flatMap((c) => statement('delete', c.set, c.delete)),
    ...changes.flatMap((c) => statement('add', c.set, c.add)),
  ];
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** Removes the table whether or not it exists. */
export function renderUninstallPayload(): string {
  return `add table ${TABLE}\ndelete table ${TABLE}\n`;
}
