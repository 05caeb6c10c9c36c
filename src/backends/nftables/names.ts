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
  bound4: ['ipv4_addr', 'inet_proto', 'inet_service'],
  boundallowed4: ['ipv4_addr', 'inet_proto', 'inet_service', 'ipv4_addr'],
  bound6: ['ipv6_addr', 'inet_proto', 'inet_service'],
  boundallowed6: ['ipv6_addr', 'inet_proto', 'inet_service', 'ipv6_addr'],
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
