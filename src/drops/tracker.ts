// Turning successive reads of the drop records into new drops: per record, the
// packets counted since the previous read. A record that vanished was
// forgotten by the kernel (its timeout ran out, or dockfw's table was written
// again); one whose counter went down started again from zero.
import { recordKey, type DropRecord } from './record.js';

export interface RecordDelta {
  readonly record: DropRecord;
  readonly packets: number;
  readonly bytes: number;
}

export class RecordTracker {
  /** Last packets and bytes seen per record key. */
  private last = new Map<string, { packets: number; bytes: number }>();
  private primed = false;

  /**
   * The records that counted packets since the previous call. The first call
   * only learns the counters (unless `countFirst`): what was dropped before
   * dockfw started is not new.
   */
  update(records: readonly DropRecord[], countFirst = false): RecordDelta[] {
    const next = new Map<string, { packets: number; bytes: number }>();
    const deltas: RecordDelta[] = [];
    for (const record of records) {
      const key = recordKey(record);
      next.set(key, { packets: record.packets, bytes: record.bytes });
      if (!this.primed && !countFirst) continue;
      const before = this.last.get(key);
      const restarted =
        before === undefined || record.packets < before.packets || record.bytes < before.bytes;
      const packets = restarted ? record.packets : record.packets - before.packets;
      const bytes = restarted ? record.bytes : record.bytes - before.bytes;
      if (packets > 0 || bytes > 0) deltas.push({ record, packets, bytes });
    }
    this.last = next;
    this.primed = true;
    return deltas;
  }
}

/** At most one line per key per interval (e.g. source, container, port per minute). */
export class RateLimiter {
  private readonly lastShown = new Map<string, number>();

  constructor(
    private readonly intervalMs: number,
    /** Keys kept at most; the oldest are forgotten first (a scan must not grow this without bound). */
    private readonly maxKeys = 65536,
  ) {}

  allow(key: string, nowMs: number): boolean {
    const last = this.lastShown.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) return false;
    this.lastShown.delete(key);
    this.lastShown.set(key, nowMs);
    if (this.lastShown.size > this.maxKeys) {
      for (const [old, at] of this.lastShown) {
        if (this.lastShown.size <= this.maxKeys && nowMs - at < this.intervalMs) break;
        this.lastShown.delete(old);
      }
    }
    return true;
  }
}
