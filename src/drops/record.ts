// Drop records as the kernel keeps them (both backends), in one shape: which
// outside source was dropped on which destination address, protocol and port,
// how many packets, and how long the record still lives.
import type { Family, Protocol } from '../docker/snapshot.js';

/** Default number of records per family; a full set records nothing new, the drop still happens. */
export const DEFAULT_DROP_RECORDS = 65536;

export interface DropRecord {
  readonly family: Family;
  /** Canonical destination: a host address (published binding) or a container address. */
  readonly destination: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** Canonical source address. */
  readonly source: string;
  readonly packets: number;
  readonly bytes: number;
  /** Seconds until the kernel forgets the record. */
  readonly expiresSeconds: number;
  /** Seconds a record lives after the moment its age is measured from. */
  readonly timeoutSeconds: number;
  /**
   * What the age is measured from: the last drop (nftables refreshes the
   * timeout on every drop) or the first (iptables: ipset's --exist would reset
   * the counter, so the timeout is not refreshed).
   */
  readonly since: 'last' | 'first';
}

/** Both families' records of one backend, and how full each set is. */
export interface DropRecords {
  readonly backend: 'iptables' | 'nftables';
  readonly records: readonly DropRecord[];
  /** Per family present: the set's capacity (0: unknown). */
  readonly capacity: ReadonlyMap<Family, number>;
}

/** Seconds since the record's last (nftables) or first (iptables) drop. */
export function recordAgeSeconds(record: DropRecord): number {
  return Math.max(0, record.timeoutSeconds - record.expiresSeconds);
}

/** One key per record: family, destination, protocol, port, source. */
export function recordKey(
  r: Pick<DropRecord, 'family' | 'destination' | 'protocol' | 'port' | 'source'>,
): string {
  return `${r.family} ${r.destination} ${r.protocol} ${r.port} ${r.source}`;
}
