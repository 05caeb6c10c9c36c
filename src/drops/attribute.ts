// Which container a drop record belongs to (pure): a record's destination is a
// host address and host port (dropped before DNAT, a published binding) or a
// container address and container port (dropped after DNAT). Both are looked
// up in the desired state of the live engine.
import type { Family, Protocol } from '../docker/snapshot.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../net/ip.js';
import type { DesiredState } from '../policy/desired.js';
import { recordAgeSeconds, type DropRecord } from './record.js';
import { ascending } from '../order.js';

export interface AttributedDrop {
  /** Container name, or undefined when no running container owns the destination any more. */
  readonly container: string | undefined;
  readonly containerId: string | undefined;
  /** `host`: a published binding (host address and port); `container`: after DNAT. */
  readonly on: 'host' | 'container' | undefined;
  readonly family: Family;
  readonly destination: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly source: string;
  readonly packets: number;
  readonly bytes: number;
  /** Seconds since the last (nftables) or first (iptables) drop. */
  readonly ageSeconds: number;
  readonly since: 'last' | 'first';
}

function canonical(family: Family, text: string): string | undefined {
  const value = family === 4 ? parseIPv4(text) : parseIPv6(text);
  return value === undefined ? undefined : formatAddress(family, value);
}

interface Owner {
  readonly id: string;
  readonly name: string;
  readonly on: 'host' | 'container';
}

/** Looks destinations up: container addresses first, then host bindings (a specific address before every-address). */
export class DropAttributor {
  private readonly rules: {
    key: string;
    protocol: Protocol;
    from: number;
    to: number;
    owner: Owner;
  }[] = [];
  private readonly bindings: {
    family: Family;
    address: string | undefined;
    protocol: Protocol;
    from: number;
    to: number;
    owner: Owner;
  }[] = [];

  constructor(desired: DesiredState) {
    for (const r of desired.rules) {
      const address = canonical(r.family, r.address);
      if (address === undefined) continue;
      this.rules.push({
        key: `${r.family} ${address}`,
        protocol: r.protocol,
        from: r.portFrom,
        to: r.portTo,
        owner: { id: r.containerId, name: r.containerName, on: 'container' },
      });
    }
    for (const b of desired.bindings) {
      this.bindings.push({
        family: b.family,
        address: b.hostAddress === undefined ? undefined : canonical(b.family, b.hostAddress),
        protocol: b.protocol,
        from: b.portFrom,
        to: b.portTo,
        owner: { id: b.containerId, name: b.containerName, on: 'host' },
      });
    }
    // A binding on one address decides before one on every address.
    this.bindings.sort((a, b) => (a.address === undefined ? 1 : 0) - (b.address === undefined ? 1 : 0));
  }

  owner(record: Pick<DropRecord, 'family' | 'destination' | 'protocol' | 'port'>): Owner | undefined {
    const key = `${record.family} ${record.destination}`;
    const inPort = (x: { protocol: Protocol; from: number; to: number }): boolean =>
      x.protocol === record.protocol && x.from <= record.port && record.port <= x.to;
    const rule = this.rules.find((r) => r.key === key && inPort(r));
    if (rule !== undefined) return rule.owner;
    const binding = this.bindings.find(
      (b) =>
        b.family === record.family &&
        (b.address === undefined || b.address === record.destination) &&
        inPort(b),
    );
    return binding?.owner;
  }

  attribute(record: DropRecord): AttributedDrop {
    const owner = this.owner(record);
    return {
      container: owner?.name,
      containerId: owner?.id,
      on: owner?.on,
      family: record.family,
      destination: record.destination,
      protocol: record.protocol,
      port: record.port,
      source: record.source,
      packets: record.packets,
      bytes: record.bytes,
      ageSeconds: recordAgeSeconds(record),
      since: record.since,
    };
  }
}

/** Most packets first, then the most recent, then by container and source. */
export function topDrops(drops: readonly AttributedDrop[], limit: number): AttributedDrop[] {
  return [...drops]
    .sort(
      (a, b) =>
        b.packets - a.packets ||
        a.ageSeconds - b.ageSeconds ||
        ascending(a.container ?? '', b.container ?? '') ||
        ascending(a.source, b.source),
    )
    .slice(0, limit);
}
