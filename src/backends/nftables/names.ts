// Fixed names of the one table dockfw owns under the nftables backend. Nothing
// outside this table is ever written.

export const TABLE_FAMILY = 'inet';
export const TABLE_NAME = 'dockfw';
/** `inet dockfw`, as nft commands spell it. */
export const TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`;
/** The one base chain. (`fwd` is an nft keyword: never name a chain that.) */
export const CHAIN = 'forward';
/**
 * Before Docker's filter-FORWARD (Docker 29) and iptables-nft's FORWARD (both
 * priority 0): a drop here is final, a return lets the packet go on to them.
 */
export const PRIORITY = -10;

/** Every set of the table; the rules never change, only these sets' elements do. */
export const SET_NAMES = ['bridges', 'outside', 'allowed4', 'guarded4', 'allowed6', 'guarded6'] as const;
export type SetName = (typeof SET_NAMES)[number];

/** nft type of each set's elements (all are interval sets). */
export const SET_TYPES: Readonly<Record<SetName, readonly string[]>> = {
  bridges: ['ifname'],
  outside: ['ifname'],
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
