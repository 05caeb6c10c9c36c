// The informer: the engine's containers kept from the event stream, so an
// event sync inspects only the containers its events name instead of
// listing and inspecting all of them. A full read (list + inspect every
// container) replaces everything; it runs whenever the caller asks (startup,
// reconnect, the periodic check, a retry, a ruleset watch) and whenever the
// cache cannot vouch for what it holds: not primed yet, the last read failed,
// the event stream is not up, or an event it cannot pin to one container.
// Unchanged containers keep their object, so per-container work can be memoised.
import {
  bridgeNames,
  mayHaveEndpoints,
  SWARM_GATEWAY_BRIDGE,
  type DockerClient,
  type NetworkSummary,
} from './docker-client.js';
import type { DockerEvent } from './events.js';
import { gatewayEndpoints, parseInspect } from './inspect.js';
import type { ContainerSnapshot, EngineSnapshot, NetworkAttachment } from './snapshot.js';

const INSPECT_CONCURRENCY = 8;
const FULL_ID = /^[0-9a-f]{64}$/;

/** What the event watch tells the cache (a port: the watch does not know what listens). */
export interface EventFollower {
  /** A subscription was accepted: events from now on arrive; earlier ones may be lost. */
  streamUp(): void;
  /** The subscription ended or failed: events are being lost. */
  streamDown(): void;
  /** One relevant event, before the sync it asks for is requested. */
  observe(event: DockerEvent): void;
  /** One event of any kind came through the subscription (relevant or not). */
  delivered(): void;
}

/**
 * The engine drops an event for a subscriber only when the subscriber's queue
 * (1,024 events in moby's publisher, 20.10 to 29) stayed full for 100 ms, and
 * every event that was in that queue is delivered after. So while the stream
 * stays up, fewer events than this delivered since a list mean none was lost
 * since: the cache vouches for itself without listing again.
 */
export const LIST_AFTER_EVENTS = 1000;

export interface CacheRead {
  readonly snapshot: EngineSnapshot;
  /** Containers left out because their inspect could not be read, with why. */
  readonly unreadable: ReadonlyMap<string, unknown>;
  /** Whether this read listed and inspected everything. */
  readonly full: boolean;
  /** Whether this read listed everything and inspected what the list showed changed. */
  readonly listed?: boolean;
  /** Containers inspected by this read. */
  readonly inspected: number;
}

type Inspected =
  | { readonly kind: 'container'; readonly container: ContainerSnapshot }
  | { readonly kind: 'gone' }
  | { readonly kind: 'unreadable'; readonly error: unknown };

function gatewayNetwork(networks: readonly NetworkSummary[]): NetworkSummary | undefined {
  return networks.find((n) => n.Name === SWARM_GATEWAY_BRIDGE && n.Driver === 'bridge');
}

function sameAttachment(a: NetworkAttachment | undefined, b: NetworkAttachment | undefined): boolean {
  return a?.network === b?.network && a?.ipv4 === b?.ipv4 && a?.ipv6 === b?.ipv6;
}

function withGateway(
  container: ContainerSnapshot,
  gateway: NetworkAttachment | undefined,
): ContainerSnapshot {
  if (gateway === undefined || container.networks.some((n) => n.network === gateway.network))
    return container;
  return { ...container, networks: [...container.networks, gateway] };
}

export class ContainerCache implements EventFollower {
  /** Parsed inspect by full id, without gateway endpoints. */
  private containers = new Map<string, ContainerSnapshot>();
  private unreadable = new Map<string, unknown>();
  private networks: readonly NetworkSummary[] = [];
  /** `docker_gwbridge` endpoints by container id. */
  private gateways = new Map<string, NetworkAttachment>();
  /** What the last read handed out, by id (with the gateway), for object identity. */
  private handedOut = new Map<string, ContainerSnapshot>();
  /** Cached ids in order; undefined once one came or went. */
  private sortedIds: string[] | undefined;
  private readonly handedOutBase = new WeakMap<ContainerSnapshot, ContainerSnapshot>();
  private readonly handedOutGateway = new WeakMap<ContainerSnapshot, NetworkAttachment | undefined>();
  /** Per container id, the list stamp its last inspect followed (readChanged). */
  private stamps = new Map<string, string>();
  /** Named by events since their last inspect began. */
  private dirty = new Set<string>();
  private gatewayDirty = false;
  /** A network came or went since the network list was read. */
  private networksDirty = false;
  private fullNeeded = true;
  private streaming = false;
  /** Events delivered since the last list was asked for. */
  private deliveredSinceList = 0;
  /**
   * A subscription began since the last listed read: the engine may answer the
   * startup list before its side of the subscription exists (it sends the
   * stream's headers first), so the next periodic check lists once more.
   */
  private listAfterConnect = false;

  constructor(
    private readonly client: DockerClient,
    private readonly options: { readonly concurrency?: number } = {},
  ) {}

  streamUp(): void {
    this.streaming = true;
    this.fullNeeded = true;
    this.listAfterConnect = true;
  }

  streamDown(): void {
    this.streaming = false;
    this.fullNeeded = true;
  }

  observe(event: DockerEvent): void {
    const id = event.containerId;
    if (event.type === 'network' && (event.action === 'create' || event.action === 'destroy')) {
      // The network list (Docker's bridges) is read again; a gateway network's endpoints follow it.
      this.networksDirty = true;
      this.gatewayDirty = true;
      return;
    }
    if ((event.type !== 'container' && event.type !== 'network') || id === undefined || !FULL_ID.test(id)) {
      this.fullNeeded = true;
      return;
    }
    this.dirty.add(id);
    if (event.type === 'network' && event.actorId === gatewayNetwork(this.networks)?.Id)
      this.gatewayDirty = true;
  }

  delivered(): void {
    this.deliveredSinceList++;
  }

  /** Enough events came since the last list that the engine may have dropped some: list again. */
  get listDue(): boolean {
    return this.listAfterConnect || this.deliveredSinceList >= LIST_AFTER_EVENTS;
  }

  /** Whether the next read without `full` would still list everything. */
  get needsFullRead(): boolean {
    return this.fullNeeded || !this.streaming;
  }

  /**
   * The engine as the cache knows it after re-reading what changed: everything
   * when `full` or when the cache cannot vouch for itself, else only the
   * containers events named (drained now: events arriving meanwhile mark them
   * again for a later read). `listed`: a full read may be the list alone, with
   * only what it shows changed inspected (readChanged), while the cache vouches.
   * A failed read changes nothing but asks for a full one.
   */
  async read(options: { readonly full: boolean; readonly listed?: boolean }): Promise<CacheRead> {
    const vouched = !this.needsFullRead;
    const full = options.full || !vouched;
    // Unreadable containers are tried again at every read (left closed until one succeeds).
    const ids = full ? undefined : [...new Set([...this.dirty, ...this.unreadable.keys()])];
    const named = [...this.dirty];
    this.dirty = new Set();
    const gatewayDirty = this.gatewayDirty;
    this.gatewayDirty = false;
    if (full) this.fullNeeded = false;
    try {
      if (options.full && options.listed === true && vouched) return await this.readChanged(named);
      return ids === undefined ? await this.readAll() : await this.readSome(ids, gatewayDirty);
    } catch (error) {
      this.fullNeeded = true;
      throw error;
    }
  }

  private async readAll(): Promise<CacheRead> {
    this.deliveredSinceList = 0;
    const [listed, networks] = await Promise.all([this.client.listContainers(), this.client.listNetworks()]);
    const ids = listed.map((c) => c.id);
    const results = await this.inspectAll(ids);
    const gateways = await this.readGateways(networks);
    const containers = new Map<string, ContainerSnapshot>();
    const unreadable = new Map<string, unknown>();
    for (const [id, result] of results) {
      if (result.kind === 'container') containers.set(result.container.id, this.keep(result.container));
      else if (result.kind === 'unreadable') unreadable.set(id, result.error);
    }
    this.containers = containers;
    this.unreadable = unreadable;
    this.networks = networks;
    this.networksDirty = false;
    this.gateways = gateways;
    this.sortedIds = undefined;
    // Keyed by the kept snapshot's id: one string per container, not a second from the list.
    this.stamps = new Map<string, string>();
    for (const c of listed) {
      const kept = containers.get(c.id);
      if (kept !== undefined) this.stamps.set(kept.id, c.stamp);
    }
    return { ...this.handOut(), full: true, inspected: ids.length };
  }

  /**
   * The periodic check's read: list everything, inspect only the containers whose
   * list stamp differs from the one their last inspect followed (or that have
   * none: read since through an event), that are new, gone or unreadable. What a
   * lost event changed shows in the list; every container is inspected again at
   * the next full read.
   */
  private async readChanged(named: readonly string[]): Promise<CacheRead> {
    this.deliveredSinceList = 0;
    this.listAfterConnect = false;
    const listed = await this.client.listContainers();
    const listedIds = new Set(listed.map((c) => c.id));
    const stale = listed.filter((c) => this.stamps.get(c.id) !== c.stamp).map((c) => c.id);
    const gone = [...this.containers.keys()].filter((id) => !listedIds.has(id));
    const ids = new Set([...stale, ...gone, ...this.unreadable.keys(), ...named]);
    const read = await this.readSome([...ids], true, true);
    // Stamps of the list this read followed, for what it inspected.
    for (const c of listed) {
      const kept = ids.has(c.id) ? this.containers.get(c.id) : undefined;
      if (kept !== undefined) this.stamps.set(kept.id, c.stamp);
    }
    return { ...read, listed: true };
  }

  /** `listNetworks`: read the network list again (else only after a network came or went). */
  private async readSome(
    ids: readonly string[],
    gatewayDirty: boolean,
    listNetworks = false,
  ): Promise<CacheRead> {
    const relist = listNetworks || this.networksDirty;
    this.networksDirty = false;
    let networks = relist ? await this.client.listNetworks() : this.networks;
    const results = await this.inspectAll(ids);
    // A network the engine made without an event (docker_gwbridge when a node joins a
    // swarm, or when a task needs it): a container names it, so read the list after all.
    if (!relist && [...results.values()].some((r) => this.namesUnknownNetwork(r)))
      networks = await this.client.listNetworks();
    const gateway = gatewayNetwork(networks);
    const gatewayConcerned =
      gateway !== undefined &&
      (gatewayDirty ||
        gateway.Id !== gatewayNetwork(this.networks)?.Id ||
        ids.some((id) => this.mayUseGateway(id, networks, results.get(id))));
    const gateways = gatewayConcerned ? await this.readGateways(networks) : this.gateways;
    const touched = [...ids];
    for (const [id, result] of results) {
      // What this inspect saw may be newer than any list stamp kept for it.
      this.stamps.delete(id);
      const kept = result.kind === 'container' ? this.keep(result.container) : undefined;
      if (kept !== undefined && kept.id !== id) touched.push(kept.id);
      this.containers.delete(id);
      this.unreadable.delete(id);
      if (kept !== undefined) this.containers.set(kept.id, kept);
      else if (result.kind === 'unreadable') this.unreadable.set(id, result.error);
    }
    this.networks = networks;
    const gatewaysBefore = this.gateways;
    if (gateway === undefined) {
      if (this.gateways.size > 0) this.gateways = new Map<string, NetworkAttachment>();
    } else this.gateways = gateways;
    // Only the inspected containers can differ from what was handed out, unless the gateways moved.
    const only = this.gateways === gatewaysBefore ? touched : undefined;
    return { ...this.handOut(only), full: false, inspected: ids.length };
  }

  private namesUnknownNetwork(result: Inspected): boolean {
    if (result.kind !== 'container') return false;
    const known = (name: string): boolean => this.networks.some((n) => n.Name === name);
    if (result.container.networks.some((a) => !known(a.network))) return true;
    // A task on an overlay network is reached through docker_gwbridge: is it known yet?
    return !known(SWARM_GATEWAY_BRIDGE) && this.mayUseGateway(result.container.id, this.networks, result);
  }

  /** A container on a network that is not a plain bridge (overlay), or one that had a gateway endpoint. */
  private mayUseGateway(
    id: string,
    networks: readonly NetworkSummary[],
    result: Inspected | undefined,
  ): boolean {
    if (this.gateways.has(id)) return true;
    const attached = [
      ...(this.containers.get(id)?.networks ?? []),
      ...(result?.kind === 'container' ? result.container.networks : []),
    ];
    return attached.some((a) => {
      const network = networks.find((n) => n.Name === a.network);
      return network === undefined || (network.Driver !== 'bridge' && network.Driver !== 'host');
    });
  }

  private async inspectAll(ids: readonly string[]): Promise<Map<string, Inspected>> {
    const results = new Map<string, Inspected>();
    const queue = [...ids];
    const worker = async (): Promise<void> => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift())
        results.set(id, await this.inspect(id));
    };
    const workers = Math.min(this.options.concurrency ?? INSPECT_CONCURRENCY, ids.length);
    await Promise.all(Array.from({ length: workers }, worker));
    return results;
  }

  private async inspect(id: string): Promise<Inspected> {
    const raw = await this.client.inspectContainer(id);
    // Dead containers are not listed either: no endpoints, nothing published.
    const state = (raw as { State?: { Status?: unknown } } | undefined)?.State?.Status;
    if (raw === undefined || (typeof state === 'string' && !mayHaveEndpoints(state))) return { kind: 'gone' };
    try {
      return { kind: 'container', container: parseInspect(raw) };
    } catch (error) {
      return { kind: 'unreadable', error };
    }
  }

  /**
   * A Swarm task on an overlay network that publishes in host mode is reached by
   * DNAT to its `docker_gwbridge` address, which its own inspect does not list;
   * that network's endpoint list does. Unreadable: none (the catch-all keeps
   * such tasks closed rather than guessing).
   */
  private async readGateways(networks: readonly NetworkSummary[]): Promise<Map<string, NetworkAttachment>> {
    const gateway = gatewayNetwork(networks);
    if (gateway === undefined) return new Map();
    return gatewayEndpoints(await this.client.inspectNetwork(gateway.Id), SWARM_GATEWAY_BRIDGE);
  }

  /** The cached object when a re-inspect found the container unchanged. */
  private keep(container: ContainerSnapshot): ContainerSnapshot {
    const before = this.containers.get(container.id);
    return before !== undefined && JSON.stringify(before) === JSON.stringify(container) ? before : container;
  }

  /**
   * What to hand out; `only`: the ids that may have changed (the rest are handed
   * out as before; the map and the id order are the cache's own, changed in
   * place, so an event costs its containers).
   */
  private handOut(only?: readonly string[]): Pick<CacheRead, 'snapshot' | 'unreadable'> {
    const before = this.handedOut;
    const handedOut = only === undefined ? new Map<string, ContainerSnapshot>() : before;
    if (only === undefined) this.sortedIds = undefined;
    const sorted = this.sortedIds;
    const place = (id: string, container: ContainerSnapshot): void => {
      const gateway = this.gateways.get(id);
      const previous = before.get(id);
      if (
        previous !== undefined &&
        this.handedOutBase.get(previous) === container &&
        sameAttachment(this.handedOutGateway.get(previous), gateway)
      ) {
        handedOut.set(id, previous);
        return;
      }
      const out = withGateway(container, gateway);
      this.handedOutBase.set(out, container);
      this.handedOutGateway.set(out, gateway);
      handedOut.set(id, out);
    };
    if (only === undefined) this.containers.forEach((container, id) => place(id, container));
    else
      for (const id of new Set(only)) {
        const container = this.containers.get(id);
        const had = handedOut.has(id);
        if (container !== undefined) place(id, container);
        else handedOut.delete(id);
        if (sorted !== undefined && had !== (container !== undefined)) placeSorted(sorted, id, !had);
      }
    this.handedOut = handedOut;
    this.sortedIds ??= [...handedOut.keys()].sort();
    return {
      snapshot: {
        containers: this.sortedIds.map((id) => handedOut.get(id) as ContainerSnapshot),
        bridges: bridgeNames(this.networks),
      },
      unreadable: new Map(this.unreadable),
    };
  }
}

/** Puts `id` into (or takes it out of) ids sorted as `Array.prototype.sort` sorts strings. */
function placeSorted(sorted: string[], id: string, present: boolean): void {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] as string) < id) low = mid + 1;
    else high = mid;
  }
  if (present) sorted.splice(low, 0, id);
  else if (sorted[low] === id) sorted.splice(low, 1);
}

/**
 * A full, fresh view of the engine: list, then inspect each container. A
 * container removed between the two is simply not there. One whose inspect
 * data cannot be read is left out too (so the catch-all keeps it closed) and
 * reported through `onUnreadable`.
 */
export async function readEngineSnapshot(
  client: DockerClient,
  onUnreadable: (id: string, error: unknown) => void = () => {},
): Promise<EngineSnapshot> {
  const read = await new ContainerCache(client).read({ full: true });
  for (const [id, error] of read.unreadable) onUnreadable(id, error);
  return read.snapshot;
}
