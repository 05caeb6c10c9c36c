// What Docker says now, normalised into plain types. Produced from
// `docker inspect` JSON (live engine or a file); consumed by the pure policy core.

import type { Family, Protocol } from '../net/family.js';

export type { Family, Protocol };

/** One published port: container port/proto made reachable at hostIp:hostPort. */
export interface PortBinding {
  readonly containerPort: number;
  readonly protocol: Protocol;
  /** '' or '0.0.0.0' / '::' mean every host address. */
  readonly hostIp: string;
  readonly hostPort: number;
}

/** A container's attachment to one Docker network. */
export interface NetworkAttachment {
  readonly network: string;
  readonly ipv4?: string;
  readonly ipv6?: string;
}

export interface ContainerSnapshot {
  /** Full 64-hex id. */
  readonly id: string;
  /** Name without the leading slash. */
  readonly name: string;
  readonly running: boolean;
  /**
   * Created and not started yet: its static port bindings (`plannedPorts`) are
   * judged before its start, so docker-proxy never listens unjudged.
   */
  readonly created?: boolean;
  /** `HostConfig.NetworkMode`: `host` means the container's sockets are the host's. */
  readonly networkMode?: string;
  /** Its labels that concern dockfw: `dockfw.*` and keys that look like them (the rest are not kept). */
  readonly labels: Readonly<Record<string, string>>;
  readonly networks: readonly NetworkAttachment[];
  readonly ports: readonly PortBinding[];
  /**
   * `HostConfig.PortBindings` with a fixed host port: known from `create`, before the
   * start, and while a restarting engine has not filled in the live bindings yet.
   * Present only then (a created container, or no live bindings): nothing else reads it.
   */
  readonly plannedPorts?: readonly PortBinding[];
}

/** Everything a sync needs to know about the engine. */
export interface EngineSnapshot {
  readonly containers: readonly ContainerSnapshot[];
  /** Linux bridge interface names of Docker's bridge networks (docker0, br-…). */
  readonly bridges: readonly string[];
}

/**
 * Whether a container's configured fixed host ports (`plannedPorts`) are judged:
 * before its start (created), or while a restarted engine has not filled in its
 * live bindings (none yet). The one test for both: `parseInspect` keeps them only
 * then, and `desiredState` reads them only then.
 */
export function plannedPortsJudged(container: Pick<ContainerSnapshot, 'created' | 'ports'>): boolean {
  return container.created === true || container.ports.length === 0;
}
