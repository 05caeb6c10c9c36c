// Reads the drop records of whichever backend holds them.
import type { Config } from '../config/config.js';
import { CommandError, type CommandRunner } from '../backends/command.js';
import { readBackendRecords } from '../backends/create.js';
import type { Family } from '../docker/snapshot.js';
import type { DropRecord } from './record.js';

export interface RecordSource {
  readonly backend: 'iptables' | 'nftables';
  /** Per family read: the set's capacity. */
  readonly capacity: ReadonlyMap<Family, number>;
  readonly count: ReadonlyMap<Family, number>;
}

export interface ReadRecords {
  readonly records: DropRecord[];
  readonly sources: RecordSource[];
}

export interface RecordRunners {
  readonly ipset?: CommandRunner;
  readonly nft?: CommandRunner;
}

function counted(records: readonly DropRecord[]): Map<Family, number> {
  const count = new Map<Family, number>();
  for (const r of records) count.set(r.family, (count.get(r.family) ?? 0) + 1);
  return count;
}

/** `backend`: the one in use, or `auto` (both are read; a missing tool means none there). */
export async function readDropRecords(
  backend: Config['backend'],
  runners: RecordRunners = {},
): Promise<ReadRecords> {
  const records: DropRecord[] = [];
  const sources: RecordSource[] = [];
  const attempt = async (
    name: RecordSource['backend'],
    read: () => Promise<{ records: DropRecord[]; capacity: Map<Family, number> }>,
  ): Promise<void> => {
    if (backend !== 'auto' && backend !== name) return;
    try {
      const got = await read();
      if (got.capacity.size === 0) return;
      records.push(...got.records);
      sources.push({ backend: name, capacity: got.capacity, count: counted(got.records) });
    } catch (error) {
      if (backend === 'auto' && error instanceof CommandError && error.missing) return;
      throw error;
    }
  };
  await attempt('nftables', () => readBackendRecords('nftables', runners.nft));
  await attempt('iptables', () => readBackendRecords('iptables', runners.ipset));
  return { records, sources };
}
