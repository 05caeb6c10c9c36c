// TableSpec → `nft -f -` payloads (pure). The rules are fixed; only set
// elements carry per-container data, so a packet costs the same few lookups
// whatever the number of containers. The layout is specified in docs/design.md.
import type { TableSpec } from './elements.js';
import { BASE_CHAINS, PRE_CHAIN, SET_NAMES, SET_TYPES, TABLE, type SetName } from './names.js';

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
function entryRules(spec: Pick<TableSpec, 'outsideConfigured' | 'bridgesUnknown'>, prefix = ''): ChainRule[] {
  return spec.outsideConfigured
    ? [{ role: `${prefix}not-outside`, text: 'iifname != @outside return' }]
    : [
        { role: `${prefix}loopback`, text: 'iifname "lo" return' },
        { role: `${prefix}from-bridge`, text: 'iifname @bridges return' },
      ];
}

/**
 * The prerouting chain's rules: each published binding (host address, or every
 * local address, and host port) lets its allowed sources on and drops the rest,
 * before Docker's DNAT or docker-proxy sees the packet.
 */
export function publishedRules(spec: Pick<TableSpec, 'outsideConfigured' | 'bridgesUnknown'>): ChainRule[] {
  return [
    ...entryRules(spec, 'pre-'),
    { role: 'pre-replies', text: 'ct direction reply return' },
    { role: 'not-local', text: 'fib daddr type != local return' },
    {
      role: 'bound-allowed4',
      text: 'ip daddr . meta l4proto . th dport . ip saddr @boundallowed4 return',
    },
    {
      role: 'bound-allowed6',
      text: 'ip6 daddr . meta l4proto . th dport . ip6 saddr @boundallowed6 return',
    },
    { role: 'bound4', text: 'ip daddr . meta l4proto . th dport @bound4 counter drop' },
    { role: 'bound6', text: 'ip6 daddr . meta l4proto . th dport @bound6 counter drop' },
  ];
}

/** The rules of a base chain by name, in order. */
export function rulesOf(
  chain: string,
  spec: Pick<TableSpec, 'outsideConfigured' | 'bridgesUnknown'>,
): ChainRule[] {
  return chain === PRE_CHAIN ? publishedRules(spec) : chainRules(spec);
}

/** The forward chain's rules, in order. Depends only on whether outside interfaces are configured. */
export function chainRules(spec: Pick<TableSpec, 'outsideConfigured' | 'bridgesUnknown'>): ChainRule[] {
  return [
    ...entryRules(spec),
    // Replies to connections the containers opened themselves.
    { role: 'replies', text: 'ct direction reply return' },
    { role: 'allowed4', text: 'ip daddr . meta l4proto . th dport . ip saddr @allowed4 return' },
    { role: 'allowed6', text: 'ip6 daddr . meta l4proto . th dport . ip6 saddr @allowed6 return' },
    { role: 'guarded4', text: 'ip daddr . meta l4proto . th dport @guarded4 counter drop' },
    { role: 'guarded6', text: 'ip6 daddr . meta l4proto . th dport @guarded6 counter drop' },
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

/**
 * The whole table in one transaction: `add` then `delete` makes the delete
 * succeed whether or not the table exists, and the new table replaces it
 * atomically (no moment without rules).
 */
export function renderTablePayload(spec: TableSpec): string {
  const sets = SET_NAMES.filter((name) => spec.sets.has(name)).flatMap((name) =>
    setLines(name, spec.sets.get(name) ?? []),
  );
  const chains = BASE_CHAINS.flatMap((chain) => [
    `\tchain ${chain.name} {`,
    `\t\ttype filter hook ${chain.hook} priority ${chain.priority}; policy accept;`,
    ...rulesOf(chain.name, spec).map((r) => `\t\t${r.text} comment "${ruleComment(r.role)}"`),
    '\t}',
  ]);
  const lines = [`add table ${TABLE}`, `delete table ${TABLE}`, `table ${TABLE} {`, ...sets, ...chains, '}'];
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
