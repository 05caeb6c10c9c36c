// Would the current DesiredState admit a connection that already exists (pure)?
// A tracked flow is judged where its packets are: on the published binding by
// its original destination (host address and port, before DNAT), and on the
// container address by where it really goes (the reply's source: the container
// address and port after DNAT), both on its original source. Flows that do not
// come from outside (the host's own, a container's, those on an interface dockfw
// does not judge) are never judged, so never cut.
import type { Family, Protocol } from '../net/family.js';
import { cidrInterval, mergeIntervals, type Interval } from '../net/intervals.js';
import { FAMILY_BITS, formatAddress, parseIPv4, parseIPv6 } from '../net/ip.js';
import type { DesiredPart, DesiredState, RuleSources } from './desired.js';
import { desiredBindingFor, desiredRuleFor, sourceMatch } from './lookup.js';

/** One tracked connection, as conntrack lists it. */
export interface Flow {
  readonly family: Family;
  readonly protocol: Protocol;
  /** Original direction: who opened it, to what. */
  readonly source: bigint;
  readonly sourcePort: number;
  readonly destination: bigint;
  readonly destinationPort: number;
  /** Reply direction's source: where the flow really goes (after DNAT: the container). */
  readonly replySource: bigint;
  readonly replySourcePort: number;
}

/** An address of one of the host's interfaces, with its prefix. */
export interface HostInterface {
  readonly name: string;
  readonly family: Family;
  readonly address: string;
  readonly prefix: number;
}

/** What the host's interfaces say about an address (see hostView). */
export interface HostView {
  /** One of the host's own addresses. */
  isLocal(family: Family, value: bigint): boolean;
  /** On the subnet of an interface dockfw does not judge (loopback, a Docker bridge, not an outside one). */
  isInside(family: Family, value: bigint): boolean;
  /** On the subnet of a Docker bridge: where the catch-all drops DNAT from outside. */
  isBridged(family: Family, value: bigint): boolean;
}

/** A flow the desired state would not admit, and who decided. */
export interface Refusal {
  readonly containerId: string | undefined;
  readonly containerName: string | undefined;
  /** e.g. `binding 0.0.0.0:8080/tcp`, `container 172.17.0.2:80/tcp`, `catch-all 172.17.0.9:80/tcp`. */
  readonly target: string;
}

function parse(family: Family, text: string): bigint | undefined {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

function bracketed(family: Family, value: bigint): string {
  const text = formatAddress(family, value);
  return family === 6 ? `[${text}]` : text;
}

/** Does the interface name match a configured one (a trailing `+` is a prefix)? */
function namedBy(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('+') ? name.startsWith(p.slice(0, -1)) : name === p));
}

/**
 * The host's view the judge needs, from its interfaces and the desired state:
 * the interfaces that are not outside are those the base chains let through
 * unjudged (lo and Docker's bridges, or every one not in DOCKFW_EXTERNAL_INTERFACES).
 */
export function hostView(interfaces: readonly HostInterface[], desired: DesiredState): HostView {
  const local = new Set<string>();
  const inside: { family: Family; interval: Interval }[] = [];
  const bridged: { family: Family; interval: Interval }[] = [];
  const bridges = desired.bridges;
  for (const i of interfaces) {
    const value = parse(i.family, i.address);
    if (value === undefined) continue;
    local.add(`${i.family} ${value}`);
    const hostBits = BigInt(FAMILY_BITS[i.family] - i.prefix);
    const base = (value >> hostBits) << hostBits;
    const subnet = { family: i.family, interval: cidrInterval(i.family, base, i.prefix) };
    const isBridge = i.name === 'docker0' || i.name.startsWith('br-') || bridges.includes(i.name);
    if (isBridge) bridged.push(subnet);
    const judged =
      desired.externalInterfaces.length > 0
        ? namedBy(i.name, desired.externalInterfaces)
        : i.name !== 'lo' && !bridges.includes(i.name);
    if (!judged) inside.push(subnet);
  }
  const within = (subnets: typeof inside, family: Family, value: bigint): boolean =>
    subnets.some((s) => s.family === family && s.interval.start <= value && value <= s.interval.end);
  return {
    isLocal: (family, value) => local.has(`${family} ${value}`),
    isInside: (family, value) => within(inside, family, value),
    isBridged: (family, value) => within(bridged, family, value),
  };
}

/** The refusal of a binding or rule that judges the flow, unless its sources hold the flow's source. */
function refusedBy(
  judge: { containerId: string; containerName: string; sources: RuleSources },
  source: bigint,
  target: string,
): Refusal | undefined {
  if (sourceMatch(judge.sources, source) !== undefined) return undefined;
  return { containerId: judge.containerId, containerName: judge.containerName, target };
}

/** Undefined when the desired state admits the flow or does not judge it; else who refuses it. */
export function judgeFlow(desired: DesiredState, host: HostView, flow: Flow): Refusal | undefined {
  const { family, protocol } = flow;
  const at = (value: bigint, port: number): string => `${bracketed(family, value)}:${port}/${protocol}`;
  if (host.isLocal(family, flow.source) || host.isInside(family, flow.source)) return undefined;
  // Before DNAT: a flow to one of the host's addresses meets the binding of that port.
  const { destination, destinationPort } = flow;
  const binding = host.isLocal(family, destination)
    ? desiredBindingFor(desired, family, formatAddress(family, destination), protocol, destinationPort)
    : undefined;
  if (binding !== undefined) {
    const shown =
      binding.hostAddress === undefined ? at(0n, destinationPort) : at(destination, destinationPort);
    const refused = refusedBy(binding, flow.source, `binding ${shown}`);
    if (refused !== undefined) return refused;
  }
  // Delivered on the host (docker-proxy, a host-network container): the binding alone judged it.
  const { replySource, replySourcePort } = flow;
  if (host.isLocal(family, replySource)) return undefined;
  const where = at(replySource, replySourcePort);
  const rule = desiredRuleFor(desired, family, formatAddress(family, replySource), protocol, replySourcePort);
  if (rule !== undefined) return refusedBy(rule, flow.source, `container ${where}`);
  const dnat = replySource !== destination || replySourcePort !== destinationPort;
  // The catch-all: DNAT to a bridge address no container's rules cover (stopped, not judged yet).
  if (dnat && host.isBridged(family, replySource))
    return { containerId: undefined, containerName: undefined, target: `catch-all ${where}` };
  return undefined;
}

function covers(next: RuleSources, previous: RuleSources): boolean {
  if (next === 'any') return true;
  if (previous === 'any') return false;
  const merged = mergeIntervals(next);
  return previous.every((p) => merged.some((n) => n.start <= p.start && p.end <= n.end));
}

interface Verdict {
  readonly containerId: string;
  readonly sources: RuleSources;
}

function verdicts(desired: DesiredState): Map<string, Verdict> {
  const out = new Map<string, Verdict>();
  for (const r of desired.rules)
    out.set(`rule ${r.family} ${r.address} ${r.protocol} ${r.portFrom}-${r.portTo}`, r);
  for (const b of desired.bindings)
    out.set(`binding ${b.family} ${b.hostAddress ?? '*'} ${b.protocol} ${b.portFrom}-${b.portTo}`, b);
  return out;
}

/**
 * Could `next` refuse a flow `previous` admitted? A target gone (a stopped
 * container: its DNAT'd flows meet the catch-all), one now another container's,
 * one whose sources no longer cover the old ones, or one newly guarded. Errs
 * towards yes (port ranges joined differently count as changed): a yes costs one
 * listing of the connection table.
 */
export function narrowed(previous: DesiredState, next: DesiredState): boolean {
  // In parts, no verdict key is two containers': only the parts that changed can narrow.
  if (previous.parts !== undefined && next.parts !== undefined) {
    for (const [id, part] of previous.parts) {
      const now = next.parts.get(id);
      if (now !== part && narrowedWhole(alone(part), alone(now))) return true;
    }
    for (const [id, part] of next.parts)
      if (!previous.parts.has(id) && narrowedWhole(alone(undefined), alone(part))) return true;
    return false;
  }
  return narrowedWhole(previous, next);
}

/** A state holding one part (or none). */
function alone(part: DesiredPart | undefined): DesiredState {
  return {
    rules: part?.rules ?? [],
    bindings: part?.bindings ?? [],
    bridges: [],
    externalInterfaces: [],
    containers: [],
    errors: [],
  };
}

function narrowedWhole(previous: DesiredState, next: DesiredState): boolean {
  const before = verdicts(previous);
  const after = verdicts(next);
  for (const [key, old] of before) {
    const now = after.get(key);
    if (now === undefined || now.containerId !== old.containerId || !covers(now.sources, old.sources))
      return true;
  }
  for (const [key, now] of after) if (!before.has(key) && now.sources !== 'any') return true;
  return false;
}
