// The Docker edge as a small port: what a sync and the event watch need, no
// more. The dockerode adapter implements it; tests use a fake.
import type { DockerEvent } from './events.js';
import { gatewayEndpoints, parseInspect } from './inspect.js';
import type { ContainerSnapshot, EngineSnapshot, NetworkAttachment } from './snapshot.js';

/** One element of GET /networks, the fields dockfw reads. */
export interface NetworkSummary {
  readonly Id: string;
  readonly Name: string;
  readonly Driver: string;
  readonly Options?: Readonly<Record<string, string>> | null;
}

export interface EngineInfo {
  readonly serverVersion: string;
  readonly apiVersion: string | undefined;
  /** `FirewallBackend.Driver` (API 1.49+): iptables, nftables, …; undefined on older engines. */
  readonly firewallBackend: string | undefined;
}

/** A live event subscription; iterating ends when the stream closes or fails. */
export interface EventSubscription extends AsyncIterable<DockerEvent> {
  close(): void;
}

export interface DockerClient {
  /** Resolves once the engine has accepted the subscription. */
  subscribe(): Promise<EventSubscription>;
  /** Containers that may have live network endpoints (running, paused, restarting). */
  listContainerIds(): Promise<string[]>;
  /** Raw `docker inspect` element, or undefined when the container is gone. */
  inspectContainer(id: string): Promise<unknown>;
  listNetworks(): Promise<NetworkSummary[]>;
  /** Raw `GET /networks/{id}` (its `Containers` endpoints), or undefined when it is gone. */
  inspectNetwork(id: string): Promise<unknown>;
  info(): Promise<EngineInfo>;
}

const INSPECT_CONCURRENCY = 8;

/** Linux bridge device of a Docker bridge network, as the engine names it. */
export function bridgeName(network: NetworkSummary): string | undefined {
  if (network.Driver !== 'bridge') return undefined;
  const configured = network.Options?.['com.docker.network.bridge.name'];
  if (configured) return configured;
  if (network.Name === 'bridge') return 'docker0';
  return `br-${network.Id.slice(0, 12)}`;
}

export function bridgeNames(networks: readonly NetworkSummary[]): string[] {
  const names = networks.map(bridgeName).filter((name): name is string => name !== undefined);
  return [...new Set(names)].sort();
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
  const [ids, networks] = await Promise.all([client.listContainerIds(), client.listNetworks()]);
  const containers: ContainerSnapshot[] = [];
  const queue = [...ids];
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const raw = await client.inspectContainer(id);
      if (raw === undefined) continue;
      try {
        containers.push(parseInspect(raw));
      } catch (error) {
        onUnreadable(id, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(INSPECT_CONCURRENCY, ids.length) }, worker));
  containers.sort((a, b) => a.id.localeCompare(b.id));
  const gateways = await swarmGatewayEndpoints(client, networks);
  return {
    containers: containers.map((c) => withGateway(c, gateways.get(c.id))),
    bridges: bridgeNames(networks),
  };
}

/** The bridge through which Swarm tasks publish in host mode on overlay networks. */
export const SWARM_GATEWAY_BRIDGE = 'docker_gwbridge';

/**
 * A Swarm task on an overlay network that publishes in host mode is reached by
 * DNAT to its `docker_gwbridge` address, which its own inspect does not list;
 * that network's endpoint list does. Unreadable: none (the catch-all keeps
 * such tasks closed rather than guessing).
 */
async function swarmGatewayEndpoints(
  client: DockerClient,
  networks: readonly NetworkSummary[],
): Promise<Map<string, NetworkAttachment>> {
  const gateway = networks.find((n) => n.Name === SWARM_GATEWAY_BRIDGE && n.Driver === 'bridge');
  if (gateway === undefined) return new Map();
  return gatewayEndpoints(await client.inspectNetwork(gateway.Id), SWARM_GATEWAY_BRIDGE);
}

function withGateway(
  container: ContainerSnapshot,
  gateway: NetworkAttachment | undefined,
): ContainerSnapshot {
  if (gateway === undefined || container.networks.some((n) => n.network === gateway.network))
    return container;
  return { ...container, networks: [...container.networks, gateway] };
}
