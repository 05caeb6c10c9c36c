// Which way a packet from SOURCE to TARGET takes, and what dockfw decides about
// it on each judgement it meets (pure): the published binding before DNAT (host
// address and host port) and the container address after it (container address
// and container port). Reads only the snapshot and the DesiredState a sync
// would write, so it answers what dockfw enforces, not what it might.
import type { Config } from '../config/config.js';
import type { ContainerSnapshot, EngineSnapshot, Family, PortBinding, Protocol } from '../docker/snapshot.js';
import { formatInterval, type Interval } from '../net/intervals.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../net/ip.js';
import type {
  ContainerState,
  DesiredBinding,
  DesiredRule,
  DesiredState,
  PortSummary,
  RuleSources,
} from '../policy/desired.js';
import type { ContainerTarget, AddressTarget, Query, QueryAddress } from './query.js';
import { hostNetworkView, onHostNetwork } from '../policy/desired.js';
import { desiredBindingFor, desiredRuleFor, sourceMatch } from '../policy/lookup.js';
import { ascending } from '../order.js';

export type Verdict = 'allowed' | 'denied';

/** One place dockfw judges the packet. */
export interface Judgement {
  readonly stage: 'binding' | 'container';
  /** What is matched, e.g. `published binding 0.0.0.0:8443/tcp (before DNAT)`. */
  readonly where: string;
  readonly verdict: Verdict;
  /** The allowed sources that let SOURCE in (`any`, `203.0.113.0/24`, …); absent when denied. */
  readonly matched?: string;
  /** What the kernel must hold for this judgement; the kernel check reads it. */
  readonly subject:
    | { readonly kind: 'binding'; readonly binding: DesiredBinding }
    | { readonly kind: 'rule'; readonly rule: DesiredRule };
}

export type PathKind = 'dnat' | 'docker-proxy' | 'direct' | 'host-network';

export interface DecidedBy {
  readonly origin: PortSummary['origin'];
  readonly label?: string;
  /** `dockfw.allow.443`, `dockfw.allow`, `default policy (deny)` or `invalid label`. */
  readonly text: string;
  /** Who may reach the port, as plan and status print it. */
  readonly allow: string;
}

/** One way the packet can go, and dockfw's verdict on it. */
export interface PacketPath {
  readonly kind: PathKind;
  readonly family: Family;
  /** How the packet travels, in words. */
  readonly description: string;
  /** Host address of the binding, or undefined for every address (and for direct routing). */
  readonly hostAddress?: string;
  readonly hostPort?: number;
  readonly container: { readonly id: string; readonly name: string; readonly state: ContainerState };
  /** Where the packet ends (container address; for docker-proxy the IPv4 one it connects to). */
  readonly containerAddress?: string;
  readonly containerPort: number;
  readonly protocol: Protocol;
  readonly decidedBy: DecidedBy;
  /** Label problems that closed the container (`dockfw.allow: "…": …`). */
  readonly problems: readonly string[];
  readonly judgements: readonly Judgement[];
  readonly verdict: Verdict;
  readonly notes: readonly string[];
}

export interface Explanation {
  readonly source: QueryAddress;
  /** The target as asked, e.g. `203.0.113.1:8443/tcp`. */
  readonly target: string;
  readonly protocol: Protocol;
  /** `unknown`: nothing dockfw judges answers to that target. */
  readonly verdict: Verdict | 'unknown';
  /** Why the target is unknown. */
  readonly reason?: string;
  readonly paths: readonly PacketPath[];
  readonly notes: readonly string[];
}

function parseFamily(family: Family, text: string): bigint | undefined {
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

/** The container's addresses of one family, canonical, numerically sorted (as desired.ts orders them). */
function addressesOf(container: ContainerSnapshot, family: Family): string[] {
  const values = new Map<string, bigint>();
  for (const network of container.networks) {
    const text = family === 4 ? network.ipv4 : network.ipv6;
    const value = text === undefined ? undefined : parseFamily(family, text);
    if (value !== undefined) values.set(formatAddress(family, value), value);
  }
  return [...values.entries()].sort((a, b) => ascending(a[1], b[1])).map(([text]) => text);
}

/** What a binding's host IP means for one family: not this family, every address, or one address. */
function bindingAddress(hostIp: string, family: Family): { address: string | undefined } | undefined {
  if (hostIp === '') return { address: undefined };
  const v4 = parseIPv4(hostIp);
  if (v4 !== undefined)
    return family === 4 ? { address: v4 === 0n ? undefined : formatAddress(4, v4) } : undefined;
  const v6 = parseIPv6(hostIp.replace(/^\[|\]$/g, ''));
  if (v6 !== undefined)
    return family === 6 ? { address: v6 === 0n ? undefined : formatAddress(6, v6) } : undefined;
  return undefined;
}

function containsSource(sources: RuleSources, family: Family, value: bigint): string | undefined {
  const hit = sourceMatch(sources, value);
  return hit === undefined || hit === 'any' ? hit : intervalText(family, hit);
}

function intervalText(family: Family, interval: Interval): string {
  return interval.start === interval.end
    ? formatAddress(family, interval.start)
    : formatInterval(family, interval).text;
}

function hostText(family: Family, address: string | undefined): string {
  const shown = address ?? (family === 4 ? '0.0.0.0' : '::');
  return family === 6 ? `[${shown}]` : shown;
}

function judgeBinding(binding: DesiredBinding, source: QueryAddress): Judgement {
  const matched = containsSource(binding.sources, source.family, source.value);
  const ports =
    binding.portFrom === binding.portTo ? `${binding.portFrom}` : `${binding.portFrom}-${binding.portTo}`;
  return {
    stage: 'binding',
    where: `published binding ${hostText(binding.family, binding.hostAddress)}:${ports}/${binding.protocol} (before DNAT)`,
    verdict: matched === undefined ? 'denied' : 'allowed',
    ...(matched === undefined ? {} : { matched }),
    subject: { kind: 'binding', binding },
  };
}

function judgeRule(rule: DesiredRule, source: QueryAddress, after: string): Judgement {
  const matched = containsSource(rule.sources, source.family, source.value);
  const ports = rule.portFrom === rule.portTo ? `${rule.portFrom}` : `${rule.portFrom}-${rule.portTo}`;
  const host = rule.family === 6 ? `[${rule.address}]` : rule.address;
  return {
    stage: 'container',
    where: `container address ${host}:${ports}/${rule.protocol} (${after})`,
    verdict: matched === undefined ? 'denied' : 'allowed',
    ...(matched === undefined ? {} : { matched }),
    subject: { kind: 'rule', rule },
  };
}

function decidedBy(port: PortSummary | undefined, policy: Config['defaultPolicy']): DecidedBy {
  if (port === undefined) return { origin: 'default', text: `default policy (${policy})`, allow: '?' };
  const text =
    port.origin === 'label'
      ? (port.label ?? 'label')
      : port.origin === 'default'
        ? `default policy (${policy})`
        : 'invalid label';
  return {
    origin: port.origin,
    ...(port.label === undefined ? {} : { label: port.label }),
    text,
    allow: port.allow,
  };
}

interface Context {
  readonly desired: DesiredState;
  readonly source: QueryAddress;
  readonly policy: Config['defaultPolicy'];
}

function pathBase(
  context: Context,
  container: ContainerSnapshot,
  containerPort: number,
  protocol: Protocol,
): Pick<PacketPath, 'container' | 'containerPort' | 'protocol' | 'decidedBy' | 'problems'> {
  const summary = context.desired.containers.find((c) => c.id === container.id);
  const port = summary?.ports.find((p) => p.port === containerPort && p.protocol === protocol);
  return {
    container: { id: container.id, name: container.name, state: summary?.state ?? 'enforced' },
    containerPort,
    protocol,
    decidedBy: decidedBy(port, context.policy),
    problems: (summary?.problems ?? []).map((p) => `${p.label}: ${p.message}`),
  };
}

function verdictOf(judgements: readonly Judgement[]): Verdict {
  return judgements.length > 0 && judgements.every((j) => j.verdict === 'allowed') ? 'allowed' : 'denied';
}

/** The way a packet to one published binding goes on: DNAT, or docker-proxy for IPv6 to an IPv4-only container. */
function bindingPath(
  context: Context,
  container: ContainerSnapshot,
  binding: PortBinding,
  family: Family,
  hostAddress: string | undefined,
): PacketPath | undefined {
  const desiredBinding = desiredBindingFor(
    context.desired,
    family,
    hostAddress,
    binding.protocol,
    binding.hostPort,
  );
  const judgements: Judgement[] = [];
  const notes: string[] = [];
  if (desiredBinding !== undefined) {
    judgements.push(judgeBinding(desiredBinding, context.source));
    if (desiredBinding.containerId !== container.id)
      notes.push(
        `the binding is judged by ${desiredBinding.containerName}'s labels (it claimed this host port first)`,
      );
  } else {
    notes.push('dockfw writes no rule for this binding (its host port is not one it can judge)');
  }
  const own = addressesOf(container, family);
  const v4 = addressesOf(container, 4);
  const host = `${hostText(family, hostAddress)}:${binding.hostPort}`;
  const base = pathBase(context, container, binding.containerPort, binding.protocol);
  if (onHostNetwork(container)) {
    return {
      kind: 'host-network',
      family,
      description: `IPv${family} ${host} → ${container.name} on the host network (INPUT, no DNAT)`,
      ...(hostAddress === undefined ? {} : { hostAddress }),
      hostPort: binding.hostPort,
      ...base,
      judgements,
      verdict: verdictOf(judgements),
      notes,
    };
  }
  const [first] = own;
  if (first !== undefined) {
    const rule = desiredRuleFor(context.desired, family, first, binding.protocol, binding.containerPort);
    if (rule !== undefined) judgements.push(judgeRule(rule, context.source, 'after DNAT'));
    if (own.length > 1)
      notes.push(`the container has more addresses (${own.slice(1).join(', ')}); each is judged alike`);
    const target = family === 6 ? `[${first}]` : first;
    return {
      kind: 'dnat',
      family,
      description: `IPv${family} DNAT ${host} → ${target}:${binding.containerPort}/${binding.protocol}`,
      ...(hostAddress === undefined ? {} : { hostAddress }),
      hostPort: binding.hostPort,
      containerAddress: first,
      ...base,
      judgements,
      verdict: verdictOf(judgements),
      notes,
    };
  }
  if (family === 6 && v4[0] !== undefined) {
    notes.push(
      "docker-proxy opens the connection to the container from the host itself, so only the binding's judgement applies (with the userland proxy off, nothing answers)",
    );
    return {
      kind: 'docker-proxy',
      family,
      description: `IPv6 ${host} → docker-proxy → ${v4[0]}:${binding.containerPort}/${binding.protocol} (the container has no IPv6 address)`,
      ...(hostAddress === undefined ? {} : { hostAddress }),
      hostPort: binding.hostPort,
      containerAddress: v4[0],
      ...base,
      judgements,
      verdict: verdictOf(judgements),
      notes,
    };
  }
  notes.push('the container has no address to forward to');
  return {
    kind: 'dnat',
    family,
    description: `IPv${family} ${host} (the container has no address: nothing answers)`,
    ...(hostAddress === undefined ? {} : { hostAddress }),
    hostPort: binding.hostPort,
    ...base,
    judgements,
    verdict: verdictOf(judgements),
    notes,
  };
}

/** Routed straight to the container's address (no DNAT): judged on the container address only. */
function directPath(
  context: Context,
  container: ContainerSnapshot,
  address: string,
  port: number,
  protocol: Protocol,
): PacketPath {
  const family = context.source.family;
  const rule = desiredRuleFor(context.desired, family, address, protocol, port);
  const judgements = rule === undefined ? [] : [judgeRule(rule, context.source, 'routed, no DNAT')];
  const shown = family === 6 ? `[${address}]` : address;
  return {
    kind: 'direct',
    family,
    description: `IPv${family} routed directly to ${shown}:${port}/${protocol}`,
    containerAddress: address,
    ...pathBase(context, container, port, protocol),
    judgements,
    verdict: verdictOf(judgements),
    notes: [
      'Docker 28 and later drop direct-routed packets to a container address themselves unless the network is in routed gateway mode',
    ],
  };
}

function hostNetworkNote(containers: readonly ContainerSnapshot[]): string[] {
  const onHost = containers.filter(onHostNetwork).map((c) => c.name);
  return onHost.length === 0
    ? []
    : [
        `containers on the host network (${onHost.join(', ')}) may listen there; dockfw judges only the ports their dockfw.allow.<port> labels name`,
      ];
}

function explainAddress(
  context: Context,
  running: readonly ContainerSnapshot[],
  target: AddressTarget,
): { paths: PacketPath[]; reason?: string; notes: string[] } {
  const { family, text } = target.address;
  const paths: PacketPath[] = [];
  for (const container of running) {
    for (const binding of container.ports) {
      if (binding.protocol !== target.protocol || binding.hostPort !== target.port) continue;
      const bound = bindingAddress(binding.hostIp, family);
      if (bound === undefined || (bound.address !== undefined && bound.address !== text)) continue;
      const path = bindingPath(context, container, binding, family, bound.address);
      if (path !== undefined) paths.push(path);
    }
  }
  if (paths.length > 0) {
    const notes = paths.some((p) => p.hostAddress === undefined)
      ? [`${text} is taken to be an address of the Docker host (every-address bindings cover all of them)`]
      : [];
    return { paths, notes };
  }
  // A container's own address: direct routing, judged on the container port.
  for (const container of running) {
    if (!addressesOf(container, family).includes(text)) continue;
    const published = container.ports.some(
      (b) => b.containerPort === target.port && b.protocol === target.protocol,
    );
    if (!published) {
      return {
        paths: [],
        reason: `${text} is ${container.name}'s address, and it does not publish container port ${target.port}/${target.protocol} (dockfw judges published ports only)`,
        notes: [],
      };
    }
    return { paths: [directPath(context, container, text, target.port, target.protocol)], notes: [] };
  }
  const shown = family === 6 ? `[${text}]` : text;
  return {
    paths: [],
    reason: `no running container publishes ${shown}:${target.port}/${target.protocol}`,
    notes: hostNetworkNote(running),
  };
}

/** Exact name first, else a unique id prefix. */
function findContainer(
  running: readonly ContainerSnapshot[],
  all: readonly ContainerSnapshot[],
  name: string,
): { container: ContainerSnapshot } | { reason: string } {
  const byName = running.find((c) => c.name === name);
  if (byName) return { container: byName };
  const lower = name.toLowerCase();
  const byId = /^[0-9a-f]+$/.test(lower) ? running.filter((c) => c.id.startsWith(lower)) : [];
  const [only] = byId;
  if (byId.length === 1 && only !== undefined) return { container: only };
  if (byId.length > 1)
    return {
      reason: `${name} is the start of ${byId.length} container ids (${byId.map((c) => c.name).join(', ')})`,
    };
  const stopped = all.find((c) => c.name === name || (/^[0-9a-f]+$/.test(lower) && c.id.startsWith(lower)));
  if (stopped) return { reason: `container ${stopped.name} is not running` };
  return { reason: `no running container is named ${name} or has an id starting with it` };
}

function explainContainer(
  context: Context,
  snapshot: EngineSnapshot,
  running: readonly ContainerSnapshot[],
  target: ContainerTarget,
): { paths: PacketPath[]; reason?: string; notes: string[] } {
  const found = findContainer(running, snapshot.containers, target.container);
  if ('reason' in found) return { paths: [], reason: found.reason, notes: [] };
  const { container } = found;
  const family = context.source.family;
  const port = `${target.port}/${target.protocol}`;
  if (onHostNetwork(container) && container.ports.length === 0) {
    return {
      paths: [],
      reason: `${container.name} uses the host network and no dockfw.allow.<port> label names a port: dockfw does not judge it`,
      notes: [],
    };
  }
  const bindings = container.ports.filter(
    (b) => b.containerPort === target.port && b.protocol === target.protocol,
  );
  if (bindings.length === 0)
    return {
      paths: [],
      reason: `${container.name} does not publish container port ${port} (ports are container ports; dockfw judges published ones only)`,
      notes: [],
    };
  const paths: PacketPath[] = [];
  const seen = new Set<string>();
  for (const binding of bindings) {
    const bound = bindingAddress(binding.hostIp, family);
    if (bound === undefined) continue;
    const key = `${bound.address ?? '*'} ${binding.hostPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const path = bindingPath(context, container, binding, family, bound.address);
    if (path !== undefined) paths.push(path);
  }
  for (const address of addressesOf(container, family))
    paths.push(directPath(context, container, address, target.port, target.protocol));
  if (paths.length === 0)
    return {
      paths: [],
      reason: `${container.name} publishes ${port} to no IPv${family} host address and has no IPv${family} address`,
      notes: [],
    };
  return { paths, notes: [] };
}

/** Explains SOURCE → TARGET against the engine and what dockfw would write for it. */
export function explain(
  snapshot: EngineSnapshot,
  desired: DesiredState,
  query: Query,
  policy: Config['defaultPolicy'],
  targetText: string,
): Explanation {
  // A host-network container's bindings are the ports its labels name (as desiredState reads them).
  const running = snapshot.containers
    .filter((c) => c.running)
    .map((c) => (onHostNetwork(c) ? hostNetworkView(c).view : c))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const context: Context = { desired, source: query.source, policy };
  const result =
    query.target.kind === 'address'
      ? explainAddress(context, running, query.target)
      : explainContainer(context, snapshot, running, query.target);
  const notes = [...result.notes];
  if (desired.externalInterfaces.length > 0)
    notes.push(
      `only packets arriving on ${desired.externalInterfaces.join(', ')} are judged (DOCKFW_EXTERNAL_INTERFACES); this assumes the packet does`,
    );
  const verdicts = new Set(result.paths.map((p) => p.verdict));
  const verdict: Explanation['verdict'] =
    result.paths.length === 0
      ? 'unknown'
      : verdicts.size === 1 && verdicts.has('allowed')
        ? 'allowed'
        : 'denied';
  if (verdicts.size > 1) notes.push('the paths disagree: allowed on some, denied on others');
  return {
    source: query.source,
    target: targetText,
    protocol: query.target.protocol,
    verdict,
    ...(result.reason === undefined ? {} : { reason: result.reason }),
    paths: result.paths,
    notes,
  };
}
