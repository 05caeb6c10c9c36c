// Fixed names in the filter and mangle tables. Every chain dockfw owns starts with OWNED_PREFIX.

/** Prefix of every chain dockfw creates; nothing else is ever written except the jump. */
export const OWNED_PREFIX = 'DOCKFW';
/** Entry chain, the target of the one jump: decides which packets come from outside. */
export const CHAIN_ENTRY = 'DOCKFW';
/** Judges packets from outside against the containers' allow lists. */
export const CHAIN_IN = 'DOCKFW-IN';
/** Every chain a sync declares, in payload order. */
export const OWNED_CHAINS = [CHAIN_ENTRY, CHAIN_IN] as const;
/**
 * mangle table: entry chain jumped to first from PREROUTING, after conntrack and
 * before Docker's DNAT. Docker never writes to mangle PREROUTING, so where it puts
 * its FORWARD jumps (live-restore reorders them for a moment) cannot matter here.
 */
export const CHAIN_PRE = 'DOCKFW-PRE';
/** mangle table: judges packets from outside against each published binding (host address and port). */
export const CHAIN_PUBLISHED = 'DOCKFW-PUBLISHED';
/** Every chain a sync declares in the mangle table, in payload order. */
export const OWNED_MANGLE_CHAINS = [CHAIN_PRE, CHAIN_PUBLISHED] as const;
/** Parent of the mangle jump. */
export const PREROUTING = 'PREROUTING';
/** Docker's chain for user rules; the jump goes first in it. */
export const DOCKER_USER = 'DOCKER-USER';
/** Parent of the jump in ip6tables on engines that have no IPv6 DOCKER-USER. */
export const FORWARD = 'FORWARD';
/** Comment on the catch-all drops. */
export const CATCH_ALL_COMMENT = 'dockfw catch-all';
/** Comment on a container's rules: `dockfw <first 12 hex digits of its id>`. */
export function containerComment(containerId: string): string {
  return `dockfw ${containerId.slice(0, 12)}`;
}
