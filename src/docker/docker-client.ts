// The Docker edge as a small port: what a sync and the event watch need, no
// more. The dockerode adapter implements it; tests use a fake.
import { hash } from 'node:crypto';
import type { DockerEvent } from './events.js';

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

/**
 * A list element's stamp: a digest of the fields a container's snapshot depends
 * on, and only those. Not `Status` ("Up 5 minutes" changes every minute), not
 * `Labels` (fixed at a container's creation: no engine call changes them; a new
 * label means a new container, a new id), and of each network endpoint only its
 * addresses (the snapshot keeps nothing else of it). The periodic check stamps
 * every container, so this is the part of its list that grows with the host.
 */
export function listStamp(summary: {
  readonly Names?: unknown;
  readonly State?: unknown;
  readonly Ports?: unknown;
  readonly NetworkSettings?: unknown;
  readonly HostConfig?: unknown;
}): string {
  const { Names, State, Ports } = summary;
  const networks = (summary.NetworkSettings as { Networks?: unknown } | null | undefined)?.Networks;
  const endpoints: unknown[] = [];
  if (typeof networks === 'object' && networks !== null)
    for (const [name, endpoint] of Object.entries(networks)) {
      const e = endpoint as { IPAddress?: unknown; GlobalIPv6Address?: unknown } | null;
      endpoints.push(name, e?.IPAddress, e?.GlobalIPv6Address);
    }
  const mode = (summary.HostConfig as { NetworkMode?: unknown } | null | undefined)?.NetworkMode;
  return hash('sha1', JSON.stringify([Names, State, Ports, endpoints, mode]), 'base64');
}

export interface ListedContainer {
  readonly id: string;
  readonly stamp: string;
}

export interface DockerClient {
  /** Resolves once the engine has accepted the subscription. */
  subscribe(): Promise<EventSubscription>;
  /**
   * Containers that may have live network endpoints (running, paused, restarting),
   * each with a stamp of what the list says of it: the same stamp, the same
   * names, state, labels, ports and network endpoints.
   */
  listContainers(): Promise<ListedContainer[]>;
  /** Raw `docker inspect` element, or undefined when the container is gone. */
  inspectContainer(id: string): Promise<unknown>;
  listNetworks(): Promise<NetworkSummary[]>;
  /** Raw `GET /networks/{id}` (its `Containers` endpoints), or undefined when it is gone. */
  inspectNetwork(id: string): Promise<unknown>;
  info(): Promise<EngineInfo>;
}

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

/** The bridge through which Swarm tasks publish in host mode on overlay networks. */
export const SWARM_GATEWAY_BRIDGE = 'docker_gwbridge';

/**
 * Dead containers have no address and publish nothing. A paused container keeps
 * its endpoints, so it stays in. A created one is about to start, and so is an
 * exited one with a restart policy while the engine restarts (it lists them as
 * exited before it starts them again): their fixed host ports are judged before
 * docker-proxy listens on them (inspect tells which exited ones will restart).
 */
export function mayHaveEndpoints(state: string | undefined): boolean {
  return state !== 'dead';
}
