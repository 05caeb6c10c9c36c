// `docker inspect` JSON (one element, or the array the CLI prints) → ContainerSnapshot.
// Only the fields dockfw needs are read; everything else is ignored.
import { z } from 'zod';
import { parseIPv4, parseIPv6 } from '../net/ip.js';
import {
  plannedPortsJudged,
  type ContainerSnapshot,
  type NetworkAttachment,
  type PortBinding,
  type Protocol,
} from './snapshot.js';
import { concernsDockfw } from '../labels/lookalike.js';
import { protocolNamed } from '../net/family.js';

const PORT_KEY = /^([1-9][0-9]{0,4})\/(tcp|udp|sctp)$/;

const optionalAddress = (family: 4 | 6) =>
  z
    .string()
    .nullish()
    .refine((text) => !text || (family === 4 ? parseIPv4(text) : parseIPv6(text)) !== undefined, {
      message: `not an IPv${family} address`,
    });

const InspectBinding = z.object({
  HostIp: z.string().nullish(),
  HostPort: z
    .string()
    .regex(/^[0-9]{0,5}$/)
    .nullish(),
});

const ConfiguredBinding = z.object({
  HostIp: z.string().nullish(),
  HostPort: z
    .string()
    .regex(/^[0-9]{0,5}(?:-[0-9]{1,5})?$/)
    .nullish(),
});

const InspectNetwork = z.object({
  IPAddress: optionalAddress(4),
  GlobalIPv6Address: optionalAddress(6),
});

export const InspectContainer = z.object({
  Id: z.string().regex(/^[0-9a-f]{64}$/, 'container id must be 64 hex digits'),
  Name: z.string(),
  State: z.object({ Running: z.boolean(), Status: z.string().nullish() }),
  Config: z.object({ Labels: z.record(z.string(), z.string()).nullish() }),
  HostConfig: z
    .object({
      NetworkMode: z.string().nullish(),
      RestartPolicy: z.object({ Name: z.string().nullish() }).passthrough().nullish(),
      // As configured: `-p 8000-8010:80` keeps a host port range here (the engine picks one at start).
      PortBindings: z.record(z.string(), z.array(ConfiguredBinding).nullish()).nullish(),
    })
    .nullish(),
  NetworkSettings: z.object({
    Networks: z.record(z.string(), InspectNetwork).nullish(),
    Ports: z.record(z.string(), z.array(InspectBinding).nullish()).nullish(),
  }),
});
export type InspectContainer = z.infer<typeof InspectContainer>;

type InspectPorts = InspectContainer['NetworkSettings']['Ports'];

function toBindings(ports: InspectPorts): PortBinding[] {
  const bindings: PortBinding[] = [];
  for (const [key, hostBindings] of Object.entries(ports ?? {})) {
    const match = PORT_KEY.exec(key);
    const containerPort = Number(match?.[1]);
    if (match === null || containerPort > 65535)
      throw new Error(`unexpected port key ${JSON.stringify(key)}`);
    const protocol = protocolNamed(match[2]) as Protocol;
    // Exposed but not published ports have null bindings.
    for (const binding of hostBindings ?? []) {
      bindings.push({
        containerPort,
        protocol,
        hostIp: binding.HostIp ?? '',
        hostPort: Number(binding.HostPort ?? 0),
      });
    }
  }
  // Kept with the snapshot: a copy holds its elements and no room to grow.
  return bindings.slice();
}

function toNetworks(networks: InspectContainer['NetworkSettings']['Networks']): NetworkAttachment[] {
  return Object.entries(networks ?? {}).map(([network, settings]) => ({
    network,
    ...(settings.IPAddress ? { ipv4: settings.IPAddress } : {}),
    ...(settings.GlobalIPv6Address ? { ipv6: settings.GlobalIPv6Address } : {}),
  }));
}

/** The labels that concern dockfw (its own and lookalikes); the same object when that is all of them. */
function dockfwLabels(labels: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const keys = Object.keys(labels);
  const kept = keys.filter(concernsDockfw);
  return kept.length === keys.length
    ? labels
    : Object.fromEntries(kept.map((key) => [key, labels[key] ?? '']));
}

/** One element of `docker inspect` output. Throws (ZodError or Error) on malformed input. */
export function parseInspect(json: unknown): ContainerSnapshot {
  const c = InspectContainer.parse(json);
  // About to start: created, or stopped with a restart policy (a restarting engine
  // lists such containers as exited before it starts them again, docker-proxy first).
  const restarts = ['always', 'unless-stopped', 'on-failure'].includes(
    c.HostConfig?.RestartPolicy?.Name ?? '',
  );
  const created =
    !c.State.Running && (c.State.Status === 'created' || (restarts && c.State.Status === 'exited'));
  // The configured bindings with a fixed host port (a range or an engine-chosen port is
  // not known before the start): judged before a created container starts, and for a
  // running one whose live bindings the engine has not filled in yet (a restart).
  const planned = toBindings(
    Object.fromEntries(
      Object.entries(c.HostConfig?.PortBindings ?? {}).map(([key, list]) => [
        key,
        (list ?? []).filter((b) => /^[0-9]{1,5}$/.test(b.HostPort ?? '')),
      ]),
    ),
  ).filter((b) => b.hostPort > 0);
  const ports = toBindings(c.NetworkSettings.Ports);
  // Kept only where they are read: before the start, or while the engine has not
  // filled in the live bindings (a restart).
  const keepPlanned = planned.length > 0 && plannedPortsJudged({ created, ports });
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    running: c.State.Running,
    ...(created ? { created } : {}),
    ...(keepPlanned ? { plannedPorts: planned.slice() } : {}),
    ...(c.HostConfig?.NetworkMode ? { networkMode: c.HostConfig.NetworkMode } : {}),
    labels: dockfwLabels(c.Config.Labels ?? {}),
    networks: toNetworks(c.NetworkSettings.Networks),
    ports,
  };
}

/** Thrown for input that is not docker inspect output; the message says where. */
export class InspectError extends Error {
  override readonly name = 'InspectError';
}

function describe(error: unknown): string {
  if (error instanceof z.ZodError) {
    return error.issues.map((issue) => `${issue.path.join('.') || '(top)'}: ${issue.message}`).join('; ');
  }
  return error instanceof Error ? error.message : String(error);
}

/** The array `docker inspect` prints. Throws InspectError naming the bad element. */
export function parseInspectArray(json: unknown): ContainerSnapshot[] {
  if (!Array.isArray(json)) throw new InspectError('expected a JSON array (the output of docker inspect)');
  return json.map((element: unknown, index) => {
    try {
      return parseInspect(element);
    } catch (error) {
      const name = (element as { Name?: unknown } | null)?.Name;
      const which = typeof name === 'string' ? `${index} (${JSON.stringify(name)})` : `${index}`;
      throw new InspectError(`container ${which}: ${describe(error)}`);
    }
  });
}

const NetworkEndpoints = z.object({
  Containers: z
    .record(
      z.string(),
      z.object({ IPv4Address: z.string().nullish(), IPv6Address: z.string().nullish() }).passthrough(),
    )
    .nullish(),
});

/** An endpoint address as the network lists it (`172.18.0.3/16`), without its prefix, when it is one. */
function endpointAddress(family: 4 | 6, text: string | null | undefined): string | undefined {
  const address = (text ?? '').split('/')[0] ?? '';
  if (address === '') return undefined;
  return (family === 4 ? parseIPv4(address) : parseIPv6(address)) === undefined ? undefined : address;
}

/** `GET /networks/{id}` → the address of each container on it, by full container id. */
export function gatewayEndpoints(json: unknown, network: string): Map<string, NetworkAttachment> {
  const parsed = NetworkEndpoints.safeParse(json);
  const endpoints = new Map<string, NetworkAttachment>();
  if (!parsed.success) return endpoints;
  for (const [id, endpoint] of Object.entries(parsed.data.Containers ?? {})) {
    if (!/^[0-9a-f]{64}$/.test(id)) continue;
    const ipv4 = endpointAddress(4, endpoint.IPv4Address);
    const ipv6 = endpointAddress(6, endpoint.IPv6Address);
    if (ipv4 === undefined && ipv6 === undefined) continue;
    endpoints.set(id, { network, ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) });
  }
  return endpoints;
}
