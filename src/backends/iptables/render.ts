// DesiredState → `iptables-restore --noflush` payload for one family (pure):
// dockfw's chains, whose rules look the verdicts up in the family's ipsets
// (sets.ts), so they change with the bridges and interfaces, never with the
// containers. Rules are spelled the way iptables-save prints them, so a
// read-back compares equal. The layout is specified in docs/design.md.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import {
  CATCH_ALL_COMMENT,
  CHAIN_DROP,
  CHAIN_ENTRY,
  CHAIN_IN,
  CHAIN_PRE,
  CHAIN_PUBLISHED,
  OWNED_CHAINS,
  OWNED_MANGLE_CHAINS,
  OWNED_PREFIX,
  RECORD_IPSETS,
} from './chains.js';
import { SET_MATCH, setName, type SetRole } from './sets.js';

export interface RenderOptions {
  /** Whether DOCKFW-DROP notes each drop in the family's record ipset (it must exist first). */
  readonly records?: boolean;
  /** Declare the jump's parent chain too (it does not exist yet: declaring an existing chain flushes it). */
  readonly declareParent?: boolean;
  /** Established and related packets skip the lookups (only where revoking cuts live connections). */
  readonly fastPath?: boolean;
}

/** Where the jump to CHAIN_ENTRY is now: parent chain and 1-based rule numbers of `-j DOCKFW` rules. */
export interface JumpState {
  readonly parent: string;
  readonly positions: readonly number[];
}

/** What is installed now, for uninstall. */
export interface InstalledState {
  readonly parent: string;
  readonly jumpPositions: readonly number[];
  readonly ownedChains: readonly string[];
}

const INTERFACE = /^[A-Za-z0-9_.+-]{1,15}$/;
const CHAIN = /^[A-Za-z0-9_.-]{1,28}$/;

/** Thrown when something that would reach the kernel is not what the core promises. */
export class RenderError extends Error {
  override readonly name = 'RenderError';
}

function checked(pattern: RegExp, text: string, what: string): string {
  if (!pattern.test(text)) throw new RenderError(`refusing to render ${what} ${JSON.stringify(text)}`);
  return text;
}

/**
 * Interfaces that are Docker's, so never "outside": only the bridges Docker
 * reports. A wildcard such as `br-+` would exempt an outside interface that
 * happens to be named like one (a bridged uplink `br-wan`).
 */
function dockerBridges(bridges: readonly string[]): string[] {
  return bridges.map((b) => checked(INTERFACE, b, 'interface'));
}

/**
 * Where the catch-all looks for DNAT to a bridge: Docker's default names as
 * well as the reported ones. A wildcard here can only close, so it stays (it
 * covers bridges of networks dockfw has not seen yet, e.g. at boot).
 */
function catchAllPatterns(bridges: readonly string[]): string[] {
  const others = bridges.filter((b) => b !== 'docker0' && !b.startsWith('br-'));
  return ['docker0', 'br-+', ...others].map((b) => checked(INTERFACE, b, 'interface'));
}

/** Which packets come from outside: `entry` sends them on to `judge`. */
function entryRules(desired: DesiredState, entry: string, judge: string): string[] {
  if (desired.externalInterfaces.length > 0) {
    return desired.externalInterfaces.map(
      (name) => `-A ${entry} -i ${checked(INTERFACE, name, 'interface')} -j ${judge}`,
    );
  }
  return [
    `-A ${entry} -i lo -j RETURN`,
    ...dockerBridges(desired.bridges).map((name) => `-A ${entry} -i ${name} -j RETURN`),
    `-A ${entry} -j ${judge}`,
  ];
}

/** `-m set` lookups of one family's verdict set (the sets are in sets.ts). */
function lookup(role: SetRole, family: Family): string {
  return `-m set --match-set ${setName(role, family)} ${SET_MATCH[role]}`;
}

/**
 * Packets of connections already let in (or related to them: ICMP errors)
 * skip the lookups. Only where revoking a source also cuts its live
 * connections (otherwise a revoked source would keep its connection): nothing
 * new passes here, a new connection is judged on its first packet.
 */
function fastPathRules(chain: string, options: RenderOptions): string[] {
  return options.fastPath === true
    ? [`-A ${chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`]
    : [];
}

/**
 * The drop chain: a record already there counts the packet (the match updates
 * its counter) and drops; else the packet is added (counted once) and
 * dropped. A full set adds nothing; the last rule drops all the same. The
 * record's timeout starts at its first drop (`--exist` would refresh it but
 * reset the counter).
 */
function dropRules(family: Family, options: RenderOptions): string[] {
  const set = RECORD_IPSETS[family];
  const record =
    options.records === true
      ? [
          `-A ${CHAIN_DROP} -m set --match-set ${set} dst,dst,src -j DROP`,
          `-A ${CHAIN_DROP} -j SET --add-set ${set} dst,dst,src`,
        ]
      : [];
  return [...record, `-A ${CHAIN_DROP} -j DROP`];
}

function inRules(desired: DesiredState, family: Family, options: RenderOptions): string[] {
  // Bridges unknown (boot guard): every interface, so custom bridge names are closed too.
  const outs =
    desired.bridgesUnknown === true ? [''] : catchAllPatterns(desired.bridges).map((n) => `-o ${n} `);
  const catchAll = outs.map(
    (out) =>
      `-A ${CHAIN_IN} ${out}-m conntrack --ctstate DNAT -m comment --comment "${CATCH_ALL_COMMENT}" -j DROP`,
  );
  return [
    `-A ${CHAIN_IN} -m conntrack --ctdir REPLY -j RETURN`,
    ...fastPathRules(CHAIN_IN, options),
    // The container address and port from an allowed source; judged ones from anyone else are dropped.
    `-A ${CHAIN_IN} ${lookup('allowed', family)} -j RETURN`,
    `-A ${CHAIN_IN} ${lookup('guarded', family)} -j ${CHAIN_DROP}`,
    ...catchAll,
  ];
}

function publishedRules(family: Family, options: RenderOptions): string[] {
  return [
    // Replies to connections the host or its containers opened.
    `-A ${CHAIN_PUBLISHED} -m conntrack --ctdir REPLY -j RETURN`,
    ...fastPathRules(CHAIN_PUBLISHED, options),
    // Only packets routed on to another unicast address carry no binding. A local
    // address does (Docker's DNAT and docker-proxy), and so do broadcast, multicast
    // and anycast ones: docker-proxy's UDP sockets on 0.0.0.0/:: take those too.
    // (ip6tables' UNICAST is any unicast address, local ones included: hence the
    // three negations there.)
    family === 4
      ? `-A ${CHAIN_PUBLISHED} -m addrtype --dst-type UNICAST -j RETURN`
      : `-A ${CHAIN_PUBLISHED} ! -d ff00::/8 -m addrtype ! --dst-type LOCAL -m addrtype ! --dst-type ANYCAST -j RETURN`,
    // A one-address binding from an allowed source, an every-address one (keyed on its port), else dropped.
    `-A ${CHAIN_PUBLISHED} ${lookup('boundip', family)} -j RETURN`,
    `-A ${CHAIN_PUBLISHED} ${lookup('boundany', family)} -j RETURN`,
    `-A ${CHAIN_PUBLISHED} ${lookup('bound', family)} -j ${CHAIN_DROP}`,
  ];
}

/** Lines that leave exactly one jump to `target`, at position 1 of the parent. */
function jumpLines(jump: JumpState, target: string): string[] {
  const parent = checked(CHAIN, jump.parent, 'chain');
  if (jump.positions.length === 1 && jump.positions[0] === 1) return [];
  // Delete by rule text, not number: a number may point at someone else's rule by now.
  return [...jump.positions.map(() => `-D ${parent} -j ${target}`), `-I ${parent} 1 -j ${target}`];
}

/** One transaction: re-declare (flush) and fill the owned chains, fix the jump. */
export function renderSyncPayload(
  desired: DesiredState,
  family: Family,
  jump: JumpState,
  options: RenderOptions = {},
): string {
  const lines = [
    '*filter',
    ...(options.declareParent === true ? [`:${checked(CHAIN, jump.parent, 'chain')} - [0:0]`] : []),
    ...OWNED_CHAINS.map((chain) => `:${chain} - [0:0]`),
    ...entryRules(desired, CHAIN_ENTRY, CHAIN_IN),
    ...inRules(desired, family, options),
    ...dropRules(family, options),
    ...jumpLines(jump, CHAIN_ENTRY),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The mangle table's part, in the same way: the published bindings judged on
 * the host address and port before DNAT, so one rule covers Docker's DNAT and
 * docker-proxy (INPUT) alike, and a container that comes back with another
 * container's old address is still judged by its own binding.
 */
export function renderPreroutingPayload(
  desired: DesiredState,
  family: Family,
  jump: JumpState,
  options: RenderOptions = {},
): string {
  const lines = [
    '*mangle',
    ...OWNED_MANGLE_CHAINS.map((chain) => `:${chain} - [0:0]`),
    ...entryRules(desired, CHAIN_PRE, CHAIN_PUBLISHED),
    ...publishedRules(family, options),
    ...dropRules(family, options),
    ...jumpLines(jump, CHAIN_PRE),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** One transaction: delete every jump, flush every owned chain, then delete them. */
export function renderUninstallPayload(
  current: InstalledState,
  table: 'filter' | 'mangle' = 'filter',
  entry: string = CHAIN_ENTRY,
): string {
  const parent = checked(CHAIN, current.parent, 'chain');
  const owned = [...new Set(current.ownedChains)].sort().map((chain) => {
    checked(CHAIN, chain, 'chain');
    if (!chain.startsWith(OWNED_PREFIX)) throw new RenderError(`refusing to delete chain ${chain}: not ours`);
    return chain;
  });
  const lines = [
    `*${table}`,
    ...current.jumpPositions.map(() => `-D ${parent} -j ${entry}`),
    // Declaring flushes; a chain that still holds rules cannot be deleted.
    ...owned.map((chain) => `:${chain} - [0:0]`),
    ...owned.map((chain) => `-X ${chain}`),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}
