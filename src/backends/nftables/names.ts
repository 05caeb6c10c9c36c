import { DEFAULT_DROP_RECORDS } from '../../drops/record.js';
// Fixed names of the one table dockfw owns under the nftables backend. Nothing
// outside this table is ever written.

export const TABLE_FAMILY = 'inet';
export const TABLE_NAME = 'dockfw';
/** `inet dockfw`, as nft commands spell it. */
export const TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`;
/** The forward base chain. (`fwd` is an nft keyword: never name a chain that.) */
export const CHAIN = 'forward';
/**
 * Before Docker's filter-FORWARD (Docker 29) and iptables-nft's FORWARD (both
 * priority 0): a drop here is final, a return lets the packet go on to them.
 */
export const PRIORITY = -10;
/** The prerouting base chain: published bindings judged on host address and port. */
export const PRE_CHAIN = 'published';
/**
 * After conntrack (-200), before Docker's DNAT (dstnat, -100): the packet still
 * carries the host address and port, whether DNAT or docker-proxy takes it on.
 */
export const PRE_PRIORITY = -150;

/** A base chain of the table: its name, hook and priority. */
export interface BaseChain {
  readonly name: string;
  readonly hook: 'prerouting' | 'forward';
  readonly priority: number;
}

/** Every base chain, in the order the table declares them. */
export const BASE_CHAINS: readonly BaseChain[] = [
  { name: PRE_CHAIN, hook: 'prerouting', priority: PRE_PRIORITY },
  { name: CHAIN, hook: 'forward', priority: PRIORITY },
];

/** Every set of the table; the rules never change, only these sets' elements do. */
export const SET_NAMES = [
  'bridges',
  'dnatbridges',
  'outside',
  'bound4',
  'boundallowed4',
  'bound6',
  'boundallowed6',
  'allowed4',
  'guarded4',
  'allowed6',
  'guarded6',
] as const;
export type SetName = (typeof SET_NAMES)[number];

/** nft type of each set's elements (all are interval sets). */
export const SET_TYPES: Readonly<Record<SetName, readonly string[]>> = {
  bridges: ['ifname'],
  dnatbridges: ['ifname'],
  outside: ['ifname'],
  // Host port first: most bindings share one host address (every local one),
  // and a set whose elements share their first field costs the kernel's insert
  // time quadratic in its size (52,500 elements: 60 s with the address first, 0.8 s so).
  bound4: ['inet_service', 'inet_proto', 'ipv4_addr'],
  boundallowed4: ['inet_service', 'inet_proto', 'ipv4_addr', 'ipv4_addr'],
  bound6: ['inet_service', 'inet_proto', 'ipv6_addr'],
  boundallowed6: ['inet_service', 'inet_proto', 'ipv6_addr', 'ipv6_addr'],
  allowed4: ['ipv4_addr', 'inet_proto', 'inet_service', 'ipv4_addr'],
  guarded4: ['ipv4_addr', 'inet_proto', 'inet_service'],
  allowed6: ['ipv6_addr', 'inet_proto', 'inet_service', 'ipv6_addr'],
  guarded6: ['ipv6_addr', 'inet_proto', 'inet_service'],
};

/** Which address family a set's elements belong to, for per-family reports. */
export function setFamily(name: SetName): 4 | 6 | undefined {
  if (name.endsWith('4')) return 4;
  if (name.endsWith('6')) return 6;
  return undefined;
}

/** The sets filled per container (published bindings and guarded targets): those of one family. */
export const VERDICT_SETS: readonly SetName[] = SET_NAMES.filter((name) => setFamily(name) !== undefined);

/**
 * Drop records: per family, a dynamic set the drop rules fill from the packet
 * path (destination . proto . port . source), with a counter and a timeout per
 * element, bounded by its size. Its elements change with traffic, not with
 * containers: they are never compared nor written by a sync.
 */
export const RECORD_SETS = { 4: 'drops4', 6: 'drops6' } as const;
export type RecordSetName = (typeof RECORD_SETS)[keyof typeof RECORD_SETS];
export const RECORD_SET_NAMES: readonly RecordSetName[] = [RECORD_SETS[4], RECORD_SETS[6]];
export const RECORD_SET_TYPES: Readonly<Record<RecordSetName, readonly string[]>> = {
  drops4: ['ipv4_addr', 'inet_proto', 'inet_service', 'ipv4_addr'],
  drops6: ['ipv6_addr', 'inet_proto', 'inet_service', 'ipv6_addr'],
};
export { DEFAULT_DROP_RECORDS };
/** How long a record lives after the last packet it counted, in seconds. */
export const RECORD_TIMEOUT_SECONDS = 3600;

/**
 * Regular chains the drop rules jump to: record the packet, then drop it. Two
 * rules, because an `update` that finds its set full ends its own rule: a drop
 * in the same rule would then not happen.
 */
export const RECORD_CHAINS = { 4: 'drop4', 6: 'drop6' } as const;
export const RECORD_CHAIN_NAMES: readonly string[] = [RECORD_CHAINS[4], RECORD_CHAINS[6]];
