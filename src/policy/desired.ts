// The pure core: what the firewall should say, from what Docker says and the config.
// Knows nothing of iptables or nftables.
import type { Config } from '../config/config.js';
import {
  plannedPortsJudged,
  type ContainerSnapshot,
  type EngineSnapshot,
  type Family,
  type PortBinding,
  type Protocol,
} from '../docker/snapshot.js';
import { intervalToCidrs } from '../net/cidrs.js';
import { formatInterval, sameSources, type Interval } from '../net/intervals.js';
import { FAMILY_BITS, formatAddress, parseIPv4, parseIPv6 } from '../net/ip.js';
import {
  ALLOW_LABEL,
  decisionFor,
  parseContainerLabels,
  parsePortSpec,
  type LabelProblem,
  type LabelsResult,
} from '../labels/labels.js';
import { lookalikeLabels } from '../labels/lookalike.js';
import { ANY, NONE, type SourceSet } from '../labels/sources.js';
import { ascending } from '../order.js';
import { PROTOCOLS } from '../net/family.js';

export type ContainerState = 'enforced' | 'closed-invalid-label' | 'default-allow' | 'default-deny';

/** Sources for one rule, in the rule's family: `any`, or intervals (empty = nobody). */
export type RuleSources = 'any' | readonly Interval[];

/** Who may reach container ports portFrom..portTo/protocol at one container address. */
export interface DesiredRule {
  readonly containerId: string;
  readonly containerName: string;
  readonly family: Family;
  /** Canonical text, re-formatted from the parsed address. */
  readonly address: string;
  readonly protocol: Protocol;
  readonly portFrom: number;
  readonly portTo: number;
  readonly sources: RuleSources;
}

/**
 * Who may reach one published binding, judged before Docker's DNAT on the host
 * address and port: the path every packet to a published port takes first,
 * whether DNAT or docker-proxy carries it on. Keyed on the binding, not on the
 * container's address, so it can only ever admit traffic for this binding.
 */
export interface DesiredBinding {
  readonly containerId: string;
  readonly containerName: string;
  readonly family: Family;
  /** Canonical host address, or undefined for every local address (`0.0.0.0`, `::`, ``). */
  readonly hostAddress: string | undefined;
  readonly protocol: Protocol;
  readonly portFrom: number;
  readonly portTo: number;
  readonly sources: RuleSources;
}

export interface PortSummary {
  readonly port: number;
  readonly protocol: Protocol;
  /** Human text: `any`, `none`, or the merged sources. */
  readonly allow: string;
  /** Where the answer came from. */
  readonly origin: 'label' | 'default' | 'invalid-label';
  /** With origin `label`: the one that decided, `dockfw.allow.<ports>[/<proto>]` or `dockfw.allow`. */
  readonly label?: string;
}

/** How packets from outside reach one published binding, and where dockfw judges them. */
export interface PathSummary {
  /** `0.0.0.0:8080/tcp`, `[::]:8080/tcp`, `203.0.113.1:8443/tcp`, or the container address for direct access. */
  readonly to: string;
  readonly via: 'ipv4-dnat' | 'ipv6-dnat' | 'docker-proxy' | 'direct' | 'host-network';
  /** In words, e.g. `IPv6 → docker-proxy → 172.17.0.2:80 (the network is IPv4-only)`. */
  readonly how: string;
  /** Where dockfw judges it: the published binding (before DNAT), the container address (after), or both. */
  readonly judgedOn: 'binding' | 'container address' | 'binding and container address';
}

export interface ContainerSummary {
  readonly id: string;
  readonly name: string;
  readonly state: ContainerState;
  readonly addresses: readonly string[];
  readonly ports: readonly PortSummary[];
  /** Every path by which each published binding is reachable from outside. */
  readonly paths?: readonly PathSummary[];
  readonly problems: readonly LabelProblem[];
}

export interface LabelError {
  readonly container: string;
  readonly label: string;
  readonly message: string;
}

export interface DesiredState {
  /** Sorted: container (name, id), family, address, protocol, port. */
  readonly rules: readonly DesiredRule[];
  /**
   * Sorted: family, host address (every-address first), protocol, port. One
   * verdict per host port: where two containers claim the same one (never at
   * once in a real engine), the first container in order wins.
   */
  readonly bindings: readonly DesiredBinding[];
  /**
   * Docker bridge interfaces, sorted and de-duplicated. Names iptables could misread
   * are left out (Docker's own names, docker0 and br-<id>, are always fine).
   */
  readonly bridges: readonly string[];
  /**
   * Docker's bridges are not known yet (the boot guard, before the engine runs):
   * the catch-all then drops DNAT from outside to every interface, so bridges
   * with a custom name are closed too.
   */
  readonly bridgesUnknown?: boolean;
  /** From the config; empty means "everything but lo and the bridges". */
  readonly externalInterfaces: readonly string[];
  /** Running containers with published ports, sorted like the rules. */
  readonly containers: readonly ContainerSummary[];
  /** Every invalid label of every running container, published ports or not. */
  readonly errors: readonly LabelError[];
  /** Keys of running containers that look like dockfw labels but are not (so ignored); optional for hand-built states. */
  readonly warnings?: readonly LabelError[];
  /**
   * The same rules and bindings cut per container, by id, when they are the
   * plain union of these parts: no two containers share a container address,
   * nor a host port of one family and protocol (on any host address). Absent
   * otherwise, and in hand-built states. An unchanged container keeps its part
   * object from sync to sync, so a backend can redo only the parts that changed.
   * Not enumerable: a spread copy (`{ ...desired, rules }`) does not carry it.
   */
  readonly parts?: ReadonlyMap<string, DesiredPart>;
}

/** One container's rules and bindings (settled among themselves). */
export interface DesiredPart {
  readonly containerId: string;
  readonly rules: readonly DesiredRule[];
  readonly bindings: readonly DesiredBinding[];
}

/** What an interface name in a rule may look like (`+` is iptables' wildcard). */
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

interface Address {
  readonly family: Family;
  readonly value: bigint;
  readonly text: string;
}

/** Every address of the container, canonical, de-duplicated, IPv4 first, numerically. */
function containerAddresses(container: ContainerSnapshot): Address[] {
  const byText = new Map<string, Address>();
  const add = (family: Family, value: bigint | undefined): void => {
    if (value === undefined) return;
    const text = formatAddress(family, value);
    byText.set(text, { family, value, text });
  };
  for (const network of container.networks) {
    if (network.ipv4) add(4, parseIPv4(network.ipv4));
    if (network.ipv6) add(6, parseIPv6(network.ipv6));
  }
  return [...byText.values()].sort((a, b) => a.family - b.family || ascending(a.value, b.value));
}

interface PublishedPort {
  readonly port: number;
  readonly protocol: Protocol;
}

/** Container port/protocol pairs, once each however many host addresses publish them. */
function publishedPorts(container: ContainerSnapshot): PublishedPort[] {
  const seen = new Map<string, PublishedPort>();
  for (const binding of container.ports) {
    seen.set(`${binding.protocol}/${binding.containerPort}`, {
      port: binding.containerPort,
      protocol: binding.protocol,
    });
  }
  return [...seen.values()].sort((a, b) => ascending(a.protocol, b.protocol) || a.port - b.port);
}

/** The families and canonical address a binding's host IP names; undefined address = every address. */
function bindingTargets(hostIp: string): { family: Family; address: string | undefined }[] {
  if (hostIp === '')
    return [
      { family: 4, address: undefined },
      { family: 6, address: undefined },
    ];
  const v4 = parseIPv4(hostIp);
  if (v4 !== undefined) return [{ family: 4, address: v4 === 0n ? undefined : formatAddress(4, v4) }];
  const v6 = parseIPv6(hostIp.replace(/^\[|\]$/g, ''));
  if (v6 !== undefined) return [{ family: 6, address: v6 === 0n ? undefined : formatAddress(6, v6) }];
  return [];
}

/** Per parsed list, its text: equal label values share one list (labels.ts), and so one text. */
const described = new WeakMap<SourceSet, string>();

function describeSources(sources: SourceSet): string {
  let text = described.get(sources);
  if (text === undefined) {
    text = spellSources(sources);
    described.set(sources, text);
  }
  return text;
}

function spellSources(sources: SourceSet): string {
  if (sources.any) return 'any';
  // Single addresses without /32 or /128: this text is for people.
  const text = (family: Family, i: Interval): string =>
    i.start === i.end ? formatAddress(family, i.start) : formatInterval(family, i).text;
  const texts = [...sources.v4.map((i) => text(4, i)), ...sources.v6.map((i) => text(6, i))];
  return texts.length === 0 ? 'none' : texts.join(', ');
}

function ruleSources(sources: SourceSet, family: Family): RuleSources {
  if (sources.any) return 'any';
  const intervals = family === 4 ? sources.v4 : sources.v6;
  // 0.0.0.0/0 or ::/0: the same as any (and iptables-save would print it without -s).
  const whole = intervals[0];
  if (whole?.start === 0n && whole.end === (1n << BigInt(FAMILY_BITS[family])) - 1n) return 'any';
  return intervals;
}

interface PortDecision extends PublishedPort {
  readonly sources: SourceSet;
}

function planBindings(container: ContainerSnapshot, decisions: readonly PortDecision[]): DesiredBinding[] {
  const bindings: DesiredBinding[] = [];
  // Indexed: a host-network label like dockfw.allow.1-65535 gives 65,535 of each.
  const byPort = new Map<string, PortDecision>();
  for (const d of decisions)
    if (!byPort.has(`${d.port}/${d.protocol}`)) byPort.set(`${d.port}/${d.protocol}`, d);
  for (const binding of container.ports) {
    if (!Number.isInteger(binding.hostPort) || binding.hostPort < 1 || binding.hostPort > 65535) continue;
    const decision = byPort.get(`${binding.containerPort}/${binding.protocol}`);
    if (decision === undefined) continue;
    for (const target of bindingTargets(binding.hostIp)) {
      bindings.push({
        containerId: container.id,
        containerName: container.name,
        family: target.family,
        hostAddress: target.address,
        protocol: binding.protocol,
        portFrom: binding.hostPort,
        portTo: binding.hostPort,
        sources: ruleSources(decision.sources, target.family),
      });
    }
  }
  // Kept with the container's part: a copy holds its elements and no room to grow.
  return bindings.slice();
}

function compareBindings(a: DesiredBinding, b: DesiredBinding): number {
  return (
    a.family - b.family ||
    (a.hostAddress === undefined ? -1 : 0) - (b.hostAddress === undefined ? -1 : 0) ||
    ascending(a.hostAddress ?? '', b.hostAddress ?? '') ||
    ascending(a.protocol, b.protocol) ||
    a.portFrom - b.portFrom
  );
}

/** What both source lists let in (interval lists are sorted and disjoint). */
function intersectSources(a: RuleSources, b: RuleSources): RuleSources {
  if (a === 'any') return b;
  if (b === 'any') return a;
  const out: Interval[] = [];
  for (const x of a)
    for (const y of b) {
      const start = x.start > y.start ? x.start : y.start;
      const end = x.end < y.end ? x.end : y.end;
      if (start <= end) out.push({ start, end });
    }
  return out.sort((p, q) => ascending(p.start, q.start));
}

/**
 * One verdict per host port. Where several claims meet on one port (two
 * containers, a created one and a running one, a host-network label and a
 * published port: never two live bindings in a real engine), a packet must be
 * let in by every claim, so the sources are their intersection: a claim can only
 * close what another opens. An every-address binding covers the specific ones of
 * its port (kernel interval sets refuse overlaps), which then only narrow it.
 * Consecutive host ports of one container with the same sources are joined
 * (`--dport a:b`).
 */
// The same two bindings joined give the same object, sync after sync: what is
// derived from a binding can be remembered by its identity.
const JOINED = new WeakMap<
  DesiredBinding,
  { readonly next: DesiredBinding; readonly joined: DesiredBinding }
>();

function joinedBinding(last: DesiredBinding, next: DesiredBinding): DesiredBinding {
  const known = JOINED.get(last);
  if (known?.next === next) return known.joined;
  const joined = { ...last, portTo: next.portTo };
  JOINED.set(last, { next, joined });
  return joined;
}

function settleBindings(planned: readonly DesiredBinding[]): readonly DesiredBinding[] {
  const portOf = (b: DesiredBinding): string => `${b.family} ${b.protocol} ${b.portFrom}`;
  const everyAddress = new Set(planned.filter((b) => b.hostAddress === undefined).map(portOf));
  const settled = new Map<string, DesiredBinding>();
  for (const b of planned) {
    const port = portOf(b);
    const key = everyAddress.has(port) ? `${port} *` : `${port} ${b.hostAddress ?? '*'}`;
    const first = settled.get(key);
    if (first === undefined) {
      settled.set(
        key,
        everyAddress.has(port) && b.hostAddress !== undefined ? { ...b, hostAddress: undefined } : b,
      );
      continue;
    }
    settled.set(key, { ...first, sources: intersectSources(first.sources, b.sources) });
  }
  const kept = [...settled.values()].sort(compareBindings);
  const joined: DesiredBinding[] = [];
  for (const b of kept) {
    const last = joined[joined.length - 1];
    if (
      last !== undefined &&
      last.containerId === b.containerId &&
      last.family === b.family &&
      last.hostAddress === b.hostAddress &&
      last.protocol === b.protocol &&
      last.portTo + 1 === b.portFrom &&
      sameSources(last.sources, b.sources)
    ) {
      joined[joined.length - 1] = joinedBinding(last, b);
      continue;
    }
    joined.push(b);
  }
  // Settled already (one container's bindings, as a rule): the same array, not a copy of it.
  return joined.length === planned.length && joined.every((b, i) => b === planned[i])
    ? planned
    : joined.slice();
}

/** `dockfw.allow` on a host-network container: there are no published ports it could mean. */
const HOST_NETWORK_ALL: LabelProblem = {
  label: ALLOW_LABEL,
  message:
    'a container on the host network publishes nothing: name its ports (dockfw.allow.<port>[/<proto>])',
};

/**
 * A host-network container's sockets are the host's: the ports its labels name
 * are its bindings, on every host address, both families. Nothing else on the
 * host is judged. `dockfw.allow` without a port is an error there (closed).
 */
export function onHostNetwork(container: ContainerSnapshot): boolean {
  return container.networkMode === 'host' || container.networks.some((n) => n.network === 'host');
}

export function hostNetworkView(container: ContainerSnapshot): {
  view: ContainerSnapshot;
  problems: LabelProblem[];
} {
  const ports: PortBinding[] = [];
  for (const key of Object.keys(container.labels)) {
    if (!key.startsWith(`${ALLOW_LABEL}.`)) continue;
    const spec = parsePortSpec(key.slice(ALLOW_LABEL.length + 1));
    if (!spec.ok) continue;
    for (let port = spec.value.from; port <= spec.value.to; port++) {
      ports.push({ containerPort: port, protocol: spec.value.protocol, hostIp: '', hostPort: port });
    }
  }
  const problems = container.labels[ALLOW_LABEL] === undefined ? [] : [HOST_NETWORK_ALL];
  return { view: { ...container, ports }, problems };
}

function bracketed(family: Family, address: string): string {
  return family === 6 ? `[${address}]` : address;
}

/**
 * Every path by which a container's published bindings are reachable from
 * outside, for `status`: Docker's DNAT per family, docker-proxy (IPv6 clients of
 * an IPv4-only container; IPv4 whenever Docker's DNAT is missing), direct or
 * routed access to the container address, the host network.
 */
/** What a summary's paths are spelled from (each read of `/status`). */
const pathInputs = new WeakMap<
  ContainerSummary,
  { readonly container: ContainerSnapshot; readonly addresses: readonly Address[] }
>();

/** One getter for every summary: a getter of its own would cost each summary a slow-mode object (3x its size). */
function summaryPaths(this: ContainerSummary): readonly PathSummary[] {
  const input = pathInputs.get(this);
  return input === undefined ? [] : pathsOf(input.container, input.addresses, onHostNetwork(input.container));
}

/**
 * The summary with its paths spelled on each read, not kept: at 5,000
 * containers these texts held 10 MB, more than the rules they describe.
 */
function withPaths(
  summary: ContainerSummary,
  container: ContainerSnapshot,
  addresses: readonly Address[],
): ContainerSummary {
  pathInputs.set(summary, { container, addresses });
  return Object.defineProperty(summary, 'paths', { get: summaryPaths, enumerable: true });
}

function pathsOf(
  container: ContainerSnapshot,
  addresses: readonly Address[],
  hostNetwork: boolean,
): PathSummary[] {
  const paths: PathSummary[] = [];
  const first = (family: Family): string | undefined => addresses.find((a) => a.family === family)?.text;
  for (const binding of container.ports) {
    if (binding.hostPort < 1) continue;
    for (const target of bindingTargets(binding.hostIp)) {
      const family = target.family;
      const host = target.address ?? (family === 4 ? '0.0.0.0' : '::');
      const to = `${bracketed(family, host)}:${binding.hostPort}/${binding.protocol}`;
      const port = `${binding.containerPort}/${binding.protocol}`;
      if (hostNetwork) {
        paths.push({
          to,
          via: 'host-network',
          how: `IPv${family} → the host network (INPUT)`,
          judgedOn: 'binding',
        });
        continue;
      }
      const own = first(family);
      const v4 = first(4);
      if (own !== undefined) {
        paths.push({
          to,
          via: family === 4 ? 'ipv4-dnat' : 'ipv6-dnat',
          how: `IPv${family} DNAT → ${bracketed(family, own)}:${port}`,
          judgedOn: 'binding and container address',
        });
        if (family === 4)
          paths.push({
            to,
            via: 'docker-proxy',
            how: `IPv4 → docker-proxy → ${own}:${port} (userland proxy, when Docker's DNAT is missing)`,
            judgedOn: 'binding',
          });
      } else if (family === 6 && v4 !== undefined) {
        paths.push({
          to,
          via: 'docker-proxy',
          how: `IPv6 → docker-proxy → ${v4}:${port} (the container has no IPv6 address)`,
          judgedOn: 'binding',
        });
      }
    }
  }
  if (!hostNetwork) {
    const ports = [...new Set(container.ports.map((b) => `${b.containerPort}/${b.protocol}`))];
    for (const address of addresses)
      for (const port of ports)
        paths.push({
          to: `${bracketed(address.family, address.text)}:${port}`,
          via: 'direct',
          how: `IPv${address.family} routed to the container address (routed networks; Docker 28 drops it otherwise)`,
          judgedOn: 'container address',
        });
  }
  return paths;
}

/**
 * A restarted engine can list a container as running before its live bindings are
 * filled in, while docker-proxy already listens: then its configured fixed host
 * ports stand in (judging them can only close). Live bindings, once there, are the
 * engine's word (an empty configured HostIp is not both families in every engine).
 */
function withPlannedPorts(container: ContainerSnapshot): ContainerSnapshot {
  const planned = container.plannedPorts ?? [];
  return plannedPortsJudged(container) && planned.length > 0 ? { ...container, ports: planned } : container;
}

interface ContainerPlan {
  summary: ContainerSummary;
  rules: DesiredRule[];
  bindings: DesiredBinding[];
  problems: readonly LabelProblem[];
}

/**
 * The most (port, source block) pairs one container may ask for. A firewall that
 * holds prefixes per port (ipset's hash:net,port) needs an element for each: a
 * host-network label as wide as the port space with one wide IPv6 range item is
 * 4.2 million of them, seconds of CPU per sync and a kernel set to match. Past
 * this the container is closed and its label named, on every backend, so a
 * label means the same everywhere. dockfw.allow.1-65535 with a few sources fits.
 */
export const MAX_SOURCE_PAIRS = 1_048_576;

const blockCounts = new WeakMap<readonly Interval[], number>();

/** CIDR blocks of a source list (1 for `any`); an upper bound while it cannot matter. */
function sourceBlocks(family: Family, sources: RuleSources, exact: boolean): number {
  if (sources === 'any') return 1;
  if (!exact) return sources.length * 2 * FAMILY_BITS[family];
  let count = blockCounts.get(sources);
  if (count === undefined) {
    count = sources.reduce((sum, interval) => sum + intervalToCidrs(family, interval).length, 0);
    blockCounts.set(sources, count);
  }
  return count;
}

/** Each judged port with its source blocks, and the port itself (what judges it). */
function sourcePairs(plan: ContainerPlan, exact: boolean): number {
  let pairs = 0;
  for (const judged of [plan.rules, plan.bindings])
    for (const r of judged)
      pairs += (r.portTo - r.portFrom + 1) * (sourceBlocks(r.family, r.sources, exact) + 1);
  return pairs;
}

/** The label that decided the most ports, named when a container asks for too much. */
function widestLabel(summary: ContainerSummary): string {
  const ports = new Map<string, number>();
  for (const p of summary.ports) if (p.label !== undefined) ports.set(p.label, (ports.get(p.label) ?? 0) + 1);
  return [...ports].sort((a, b) => b[1] - a[1])[0]?.[0] ?? ALLOW_LABEL;
}

function planContainer(
  container: ContainerSnapshot,
  config: Config,
  extraProblems: readonly LabelProblem[] = [],
): ContainerPlan {
  const plan = planLabels(container, config, extraProblems);
  if (sourcePairs(plan, false) <= MAX_SOURCE_PAIRS) return plan;
  const pairs = sourcePairs(plan, true);
  if (pairs <= MAX_SOURCE_PAIRS) return plan;
  const tooMany: LabelProblem = {
    label: widestLabel(plan.summary),
    message: `asks for ${pairs} (port, source block) pairs, more than ${MAX_SOURCE_PAIRS}: name fewer ports or sources (closed until then)`,
  };
  return planLabels(container, config, [tooMany, ...extraProblems]);
}

function planLabels(
  container: ContainerSnapshot,
  config: Config,
  extraProblems: readonly LabelProblem[],
): ContainerPlan {
  const parsed = parseContainerLabels(container.labels);
  const labels: LabelsResult =
    extraProblems.length === 0
      ? parsed
      : {
          kind: 'invalid',
          problems: [...extraProblems, ...(parsed.kind === 'invalid' ? parsed.problems : [])],
        };
  const ports = publishedPorts(container);
  const fallback = config.defaultPolicy === 'allow' ? ANY : NONE;
  const decisions: (PortDecision & Pick<PortSummary, 'origin' | 'label'>)[] = ports.map((p) => {
    if (labels.kind === 'invalid') return { ...p, sources: NONE, origin: 'invalid-label' };
    const labelled = labels.kind === 'labeled' ? decisionFor(labels.policy, p.port, p.protocol) : undefined;
    return labelled === undefined
      ? { ...p, sources: fallback, origin: 'default' }
      : { ...p, sources: labelled.sources, origin: 'label', label: labelled.label };
  });
  const state: ContainerState =
    labels.kind === 'invalid'
      ? 'closed-invalid-label'
      : labels.kind === 'labeled'
        ? 'enforced'
        : config.defaultPolicy === 'allow'
          ? 'default-allow'
          : 'default-deny';
  const addresses = containerAddresses(container);
  const rules: DesiredRule[] = [];
  for (const address of addresses) {
    for (const decision of decisions) {
      const sources = ruleSources(decision.sources, address.family);
      const last = rules[rules.length - 1];
      // Consecutive ports with the same sources share one rule (--dport a:b).
      if (
        last !== undefined &&
        last.address === address.text &&
        last.protocol === decision.protocol &&
        last.portTo + 1 === decision.port &&
        sameSources(last.sources, sources)
      ) {
        rules[rules.length - 1] = { ...last, portTo: decision.port };
        continue;
      }
      rules.push({
        containerId: container.id,
        containerName: container.name,
        family: address.family,
        address: address.text,
        protocol: decision.protocol,
        portFrom: decision.port,
        portTo: decision.port,
        sources,
      });
    }
  }
  const problems = labels.kind === 'invalid' ? labels.problems : [];
  const bindings = planBindings(container, decisions);
  const summary: ContainerSummary = {
    id: container.id,
    name: container.name,
    state,
    addresses: addresses.map((a) => a.text),
    ports: decisions.map((d) => ({
      port: d.port,
      protocol: d.protocol,
      allow: describeSources(d.sources),
      origin: d.origin,
      ...(d.label === undefined ? {} : { label: d.label }),
    })),
    problems,
  };
  return {
    bindings,
    summary: withPaths(summary, container, addresses),
    rules: rules.slice(),
    problems,
  };
}

/** What one container adds to the desired state; a pure function of the container and the config. */
interface ContainerPart {
  /** Running: shown in `containers` when it publishes a port. */
  readonly summary?: ContainerSummary;
  readonly rules: readonly DesiredRule[];
  readonly bindings: readonly DesiredBinding[];
  readonly errors: readonly LabelError[];
  readonly warnings: readonly LabelError[];
}

const NOTHING: ContainerPart = { rules: [], bindings: [], errors: [], warnings: [] };

function containerPart(container: ContainerSnapshot, config: Config): ContainerPart {
  if (!container.running) {
    // Created, not started: fixed host ports judged before docker-proxy listens.
    const ports = container.created === true ? (container.plannedPorts ?? []) : [];
    if (ports.length === 0) return NOTHING;
    return { ...NOTHING, bindings: planContainer({ ...container, ports }, config).bindings };
  }
  const host = onHostNetwork(container) ? hostNetworkView(container) : undefined;
  const planned = planContainer(host?.view ?? withPlannedPorts(container), config, host?.problems);
  const errors = planned.problems.map((p) => ({ container: container.name, ...p }));
  const warnings = lookalikeLabels(container.labels).map((w) => ({ container: container.name, ...w }));
  if (planned.summary.ports.length === 0) return { ...NOTHING, errors, warnings };
  return { summary: planned.summary, rules: planned.rules, bindings: planned.bindings, errors, warnings };
}

/**
 * Per config, per container object: the cache hands out the same object for a
 * container that did not change, so a sync re-plans only the ones that did.
 * Snapshots are immutable, so a remembered part is what planning it again gives.
 */
const remembered = new WeakMap<Config, WeakMap<ContainerSnapshot, ContainerPart>>();

function partOf(container: ContainerSnapshot, config: Config): ContainerPart {
  let parts = remembered.get(config);
  if (parts === undefined) {
    parts = new WeakMap();
    remembered.set(config, parts);
  }
  let part = parts.get(container);
  if (part === undefined) {
    part = containerPart(container, config);
    parts.set(container, part);
  }
  return part;
}

/**
 * Something only one part may hold: a container address (its text, always
 * formatAddress's canonical one, so one address is one claim; IPv4 and IPv6 texts
 * never meet) or a host port of a family and protocol (a number, so the claims
 * of 5,000 containers are no texts to keep).
 */
type Claim = string | number;

function portClaim(family: Family, protocol: Protocol, port: number): number {
  return ((family === 4 ? 0 : 4) + PROTOCOLS.indexOf(protocol)) * 65536 + port;
}

interface SharedPart {
  readonly part: DesiredPart;
  /** What no other container may claim for the union to hold: its addresses, its host ports. */
  readonly claims: readonly Claim[];
}

const shared = new WeakMap<ContainerPart, SharedPart>();

function sharedPart(id: string, part: ContainerPart): SharedPart {
  let known = shared.get(part);
  if (known === undefined) {
    const claims = new Set<Claim>();
    for (const rule of part.rules) claims.add(rule.address);
    for (const b of part.bindings)
      for (let port = b.portFrom; port <= b.portTo; port++) claims.add(portClaim(b.family, b.protocol, port));
    known = {
      part: { containerId: id, rules: part.rules, bindings: settleBindings(part.bindings) },
      claims: [...claims],
    };
    shared.set(part, known);
  }
  return known;
}

/**
 * Who holds each claim after the last call, so the next one re-checks only the
 * containers that changed (a cache: any sequence of calls gives the same answers).
 */
let lastClaims: { parts: Map<string, SharedPart>; owners: Map<Claim, string> } | undefined;

/** The containers planned, in order: `parts[i]` is container `ids[i]`'s (two arrays, not a pair each). */
interface Planned {
  readonly ids: string[];
  readonly parts: ContainerPart[];
}

/**
 * The containers' parts by id, or undefined when two of them claim the same thing.
 * The kept claims change in place, only for the parts that are new, other or gone.
 */
function independentParts(planned: Planned): Map<string, DesiredPart> | undefined {
  const last = lastClaims ?? { parts: new Map<string, SharedPart>(), owners: new Map<Claim, string>() };
  // Until the claims hold again: a conflict or a throw leaves the next call starting afresh.
  lastClaims = undefined;
  const { parts: held, owners } = last;
  const parts = new Map<string, DesiredPart>();
  const changed: (readonly [string, SharedPart])[] = [];
  let fresh = 0;
  for (let i = 0; i < planned.ids.length; i++) {
    const id = planned.ids[i] as string;
    const part = planned.parts[i] as ContainerPart;
    if (part.rules.length === 0 && part.bindings.length === 0) continue;
    const own = sharedPart(id, part);
    parts.set(id, own.part);
    const before = held.get(id);
    if (before === own) continue;
    if (before === undefined) fresh++;
    changed.push([id, own]);
  }
  const release = (id: string, before: SharedPart): void => {
    for (const claim of before.claims) if (owners.get(claim) === id) owners.delete(claim);
  };
  for (const [id] of changed) {
    const before = held.get(id);
    if (before !== undefined) release(id, before);
  }
  // Kept ids that are not in `parts` went: there are some when more are kept than are still planned.
  if (held.size > parts.size - fresh)
    held.forEach((before, id) => {
      if (parts.has(id)) return;
      release(id, before);
      held.delete(id);
    });
  for (const [id, now] of changed) {
    for (const claim of now.claims) {
      const owner = owners.get(claim);
      if (owner !== undefined && owner !== id) return undefined;
      owners.set(claim, id);
    }
    held.set(id, now);
  }
  lastClaims = last;
  return parts;
}

export interface DesiredOptions {
  /** Cut the state into per-container parts where it can be (default true). */
  readonly parts?: boolean;
}

export function desiredState(
  snapshot: EngineSnapshot,
  config: Config,
  options: DesiredOptions = {},
): DesiredState {
  const running = byName(
    'running',
    snapshot.containers.filter((c) => c.running),
  );
  const containers: ContainerSummary[] = [];
  const errors: LabelError[] = [];
  const warnings: LabelError[] = [];
  const planned: Planned = { ids: [], parts: [] };
  for (const container of running) {
    const part = partOf(container, config);
    planned.ids.push(container.id);
    planned.parts.push(part);
    for (const error of part.errors) errors.push(error);
    for (const warning of part.warnings) warnings.push(warning);
    if (part.summary !== undefined) containers.push(part.summary);
  }
  // Created ones after every running container's, so a running binding always wins its port.
  for (const container of byName(
    'created',
    snapshot.containers.filter((c) => !c.running && c.created === true),
  )) {
    planned.ids.push(container.id);
    planned.parts.push(partOf(container, config));
  }
  const parts = options.parts === false ? undefined : independentParts(planned);
  const common = {
    bridges: [...new Set(snapshot.bridges)].filter((name) => INTERFACE_NAME.test(name)).sort(),
    externalInterfaces: [...config.externalInterfaces],
    containers,
    errors,
    warnings,
  };
  if (parts === undefined) {
    const bindings = planned.parts.flatMap((part) => part.bindings);
    return { ...common, rules: rulesOf(planned), bindings: settleBindings(bindings) };
  }
  // Independent parts settle alone: the whole is their bindings in order. Put
  // together when asked for: a backend that works per part never asks.
  let rules: DesiredRule[] | undefined;
  let settled: DesiredBinding[] | undefined;
  const state: DesiredState = {
    ...common,
    get rules() {
      return (rules ??= rulesOf(planned));
    },
    get bindings() {
      return (settled ??= [...parts.values()].flatMap((p) => p.bindings).sort(compareBindings));
    },
  };
  // Not enumerable: a state spread into another with other rules (`{ ...desired, rules }`)
  // must not carry parts that no longer say the same.
  return Object.defineProperty(state, 'parts', { value: parts, enumerable: false });
}

/** The running containers' rules, in order (created ones have none). */
function compareByName(a: ContainerSnapshot, b: ContainerSnapshot): number {
  return ascending(a.name, b.name) || ascending(a.id, b.id);
}

/**
 * Each list's last sorted order, and its members marked with the call that last
 * saw them, so the next sort only places what is new (a cache).
 */
const lastSorted = new Map<
  string,
  { order: readonly ContainerSnapshot[]; seen: Map<ContainerSnapshot, number> }
>();
let sortCall = 0;

/**
 * Sorted by name then id: the last order kept for the containers still there, the
 * new ones merged in; the same array when the containers are the same objects.
 */
function byName(list: string, containers: readonly ContainerSnapshot[]): readonly ContainerSnapshot[] {
  const last = lastSorted.get(list) ?? { order: [], seen: new Map<ContainerSnapshot, number>() };
  const call = ++sortCall;
  const added = new Set<ContainerSnapshot>();
  let known = 0;
  for (const c of containers) {
    const mark = last.seen.get(c);
    if (mark === undefined) added.add(c);
    else if (mark !== call) {
      last.seen.set(c, call);
      known++;
    }
  }
  if (added.size === 0 && known === last.order.length) return last.order;
  // Until the new order is kept: a throw leaves the next call sorting afresh.
  lastSorted.delete(list);
  let kept = last.order;
  if (known < last.order.length) {
    kept = kept.filter((c) => last.seen.get(c) === call);
    for (const c of last.order) if (last.seen.get(c) !== call) last.seen.delete(c);
  }
  const fresh = [...added].sort(compareByName);
  const sorted: ContainerSnapshot[] = [];
  let i = 0;
  for (const c of kept) {
    while (i < fresh.length && compareByName(fresh[i] as ContainerSnapshot, c) < 0)
      sorted.push(fresh[i++] as ContainerSnapshot);
    sorted.push(c);
  }
  for (; i < fresh.length; i++) sorted.push(fresh[i] as ContainerSnapshot);
  for (const c of fresh) last.seen.set(c, call);
  lastSorted.set(list, { order: sorted, seen: last.seen });
  return sorted;
}

function rulesOf(planned: Planned): DesiredRule[] {
  const rules: DesiredRule[] = [];
  // Not push(...list): a host-network label over every port gives 131,070 bindings.
  for (const part of planned.parts) for (const rule of part.rules) rules.push(rule);
  return rules;
}

/** One line per error, e.g. `web: dockfw.allow.443: "10.0.0.0/33": prefix length must be 0-32`. */
export function formatLabelError(error: LabelError): string {
  return `${error.container}: ${error.label}: ${error.message}`;
}

/** One line per warning, e.g. `web: label "DOCKFW.ALLOW" is not a dockfw label (…)`; the message names the key. */
export function formatLabelWarning(warning: LabelError): string {
  return `${warning.container}: ${warning.message}`;
}
