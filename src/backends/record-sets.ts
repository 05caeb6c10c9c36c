// Reading both families' drop record sets, whatever holds them: one read per
// family, a family whose set does not exist contributes nothing.
import type { Family } from '../docker/snapshot.js';
import type { DropRecord } from '../drops/record.js';

export interface FamilyRecords {
  readonly records: readonly DropRecord[];
  readonly capacity: number;
}

/** `read` answers 'absent' when the family has no set, 'stop' when no family can have one. */
export interface RecordSets {
  readonly records: DropRecord[];
  /** Per family read: its set's size. */
  readonly capacity: Map<Family, number>;
}

export async function readRecordSets(
  read: (family: Family) => Promise<FamilyRecords | 'absent' | 'stop'>,
): Promise<RecordSets> {
  const records: DropRecord[] = [];
  const capacity = new Map<Family, number>();
  for (const family of [4, 6] as const) {
    const got = await read(family);
    if (got === 'stop') break;
    if (got === 'absent') continue;
    records.push(...got.records);
    capacity.set(family, got.capacity);
  }
  return { records, capacity };
}
