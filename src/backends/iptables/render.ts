// DesiredState → `iptables-restore --noflush` payload for one family (pure).
// Rules are spelled the way iptables-save prints them, so a read-back compares equal.
// The layout is specified in docs/design.md.
import type { Family } from '../../docker/snapshot.js';
import { formatInterval } from '../../labels/intervals.js';
import { parseIPv4, parseIPv6 } from '../../labels/ip.js';
import type { DesiredRule, DesiredState } from '../../policy/desired.js';
import {
  CATCH_ALL_COMMENT,
  CHAIN_ENTRY,
  CHAIN_IN,
  containerComment,
  OWNED_CHAINS,
  OWNED_PREFIX,
} from './chains.js';

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
const CONTAINER_ID = /^[0-9a-f]{12,64}$/;

/** Thrown when something that would reach the kernel is not what the core promises. */
export class RenderError extends Error {
  override readonly name = 'RenderError';
}

function checked(pattern: RegExp, text: string, what: string): string {
  if (!pattern.test(text)) throw new RenderError(`refusing to render ${what} ${JSON.stringify(text)}`);
  return text;
}

function checkedAddress(family: Family, text: string): string {
  const ok = family === 4 ? parseIPv4(text) !== undefined : parseIPv6(text) !== undefined;
  if (!ok) throw new RenderError(`refusing to render IPv${family} address ${JSON.stringify(text)}`);
  return text;
}

function checkedPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new RenderError(`refusing to render port ${port}`);
  return port;
}

/** Interfaces that are Docker's, so never "outside": docker0, br-+, then any other bridge. */
function bridgePatterns(bridges: readonly string[]): string[] {
  const others = bridges.filter((b) => b !== 'docker0' && !b.startsWith('br-'));
  return ['docker0', 'br-+', ...others].map((b) => checked(INTERFACE, b, 'interface'));
}

function entryRules(desired: DesiredState): string[] {
  if (desired.externalInterfaces.length > 0) {
    return desired.externalInterfaces.map(
      (name) => `-A ${CHAIN_ENTRY} -i ${checked(INTERFACE, name, 'interface')} -j ${CHAIN_IN}`,
    );
  }
  return [
    `-A ${CHAIN_ENTRY} -i lo -j RETURN`,
    ...bridgePatterns(desired.bridges).map((name) => `-A ${CHAIN_ENTRY} -i ${name} -j RETURN`),
    `-A ${CHAIN_ENTRY} -j ${CHAIN_IN}`,
  ];
}

function containerRules(rule: DesiredRule): string[] {
  const hostBits = rule.family === 4 ? 32 : 128;
  const destination = `-d ${checkedAddress(rule.family, rule.address)}/${hostBits}`;
  const from = checkedPort(rule.portFrom);
  const to = checkedPort(rule.portTo);
  const ports = from === to ? `${from}` : `${from}:${to}`;
  const proto = rule.protocol;
  if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp')
    throw new RenderError(`refusing protocol ${String(proto)}`);
  const comment = `-m comment --comment "${containerComment(checked(CONTAINER_ID, rule.containerId, 'container id'))}"`;
  const portMatch = `-m ${proto} --dport ${ports}`;
  if (rule.sources === 'any') {
    return [`-A ${CHAIN_IN} ${destination} -p ${proto} ${portMatch} ${comment} -j RETURN`];
  }
  const allows = rule.sources.map((interval) => {
    const source = formatInterval(rule.family, interval);
    return source.kind === 'cidr'
      ? `-A ${CHAIN_IN} -s ${source.text} ${destination} -p ${proto} ${portMatch} ${comment} -j RETURN`
      : `-A ${CHAIN_IN} ${destination} -p ${proto} -m iprange --src-range ${source.text} ${portMatch} ${comment} -j RETURN`;
  });
  return [...allows, `-A ${CHAIN_IN} ${destination} -p ${proto} ${portMatch} ${comment} -j DROP`];
}

function inRules(desired: DesiredState, family: Family): string[] {
  const catchAll = bridgePatterns(desired.bridges).map(
    (name) =>
      `-A ${CHAIN_IN} -o ${name} -m conntrack --ctstate DNAT -m comment --comment "${CATCH_ALL_COMMENT}" -j DROP`,
  );
  return [
    `-A ${CHAIN_IN} -m conntrack --ctdir REPLY -j RETURN`,
    ...desired.rules.filter((r) => r.family === family).flatMap(containerRules),
    ...catchAll,
  ];
}

/** Lines that leave exactly one jump, at position 1 of the parent. */
function jumpLines(jump: JumpState): string[] {
  const parent = checked(CHAIN, jump.parent, 'chain');
  if (jump.positions.length === 1 && jump.positions[0] === 1) return [];
  // Delete by rule text, not number: a number may point at someone else's rule by now.
  return [...jump.positions.map(() => `-D ${parent} -j ${CHAIN_ENTRY}`), `-I ${parent} 1 -j ${CHAIN_ENTRY}`];
}

/** One transaction: re-declare (flush) and fill the owned chains, fix the jump. */
export function renderSyncPayload(desired: DesiredState, family: Family, jump: JumpState): string {
  const lines = [
    '*filter',
    ...OWNED_CHAINS.map((chain) => `:${chain} - [0:0]`),
    ...entryRules(desired),
    ...inRules(desired, family),
    ...jumpLines(jump),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** One transaction: delete every jump, flush every owned chain, then delete them. */
export function renderUninstallPayload(current: InstalledState): string {
  const parent = checked(CHAIN, current.parent, 'chain');
  const owned = [...new Set(current.ownedChains)].sort().map((chain) => {
    checked(CHAIN, chain, 'chain');
    if (!chain.startsWith(OWNED_PREFIX)) throw new RenderError(`refusing to delete chain ${chain}: not ours`);
    return chain;
  });
  const lines = [
    '*filter',
    ...current.jumpPositions.map(() => `-D ${parent} -j ${CHAIN_ENTRY}`),
    // Declaring flushes; a chain that still holds rules cannot be deleted.
    ...owned.map((chain) => `:${chain} - [0:0]`),
    ...owned.map((chain) => `-X ${chain}`),
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}
