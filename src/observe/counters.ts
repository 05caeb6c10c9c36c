// Monotonic drop totals from the backend's rule counters, read at scrape time.
// The kernel resets a chain's counters whenever dockfw rewrites it, so totals
// are carried across rewrites here to keep the metrics monotonic.
import {
  addTraffic as add,
  NO_TRAFFIC as ZERO,
  type FamilyCounters,
  type Traffic,
} from '../backends/firewall.js';
import type { Family } from '../docker/snapshot.js';

export type { FamilyCounters, Traffic };

interface Carried {
  /** What the kernel said at the last read. */
  last: Traffic;
  /** Everything counted before the kernel's counters were last reset. */
  before: Traffic;
}

/**
 * Monotonic drop totals across chain rewrites. A rewrite (a `generation` change,
 * one per write dockfw made) or a counter going down (someone else flushed the
 * chain) means the kernel started again from zero. Drops between the last read
 * and a rewrite are not seen; scrape often for exact numbers.
 */
export class DropTotals {
  private readonly carried = new Map<string, Carried>();
  private readonly generations = new Map<Family, number>();

  /** Feeds one family's fresh read; keys not in it are forgotten (their rules are gone). */
  update(family: Family, generation: number, counters: FamilyCounters): void {
    const rewritten = this.generations.has(family) && this.generations.get(family) !== generation;
    this.generations.set(family, generation);
    const now = new Map<string, Traffic>(counters.drops);
    now.set('', counters.catchAll);
    for (const key of [...this.carried.keys()]) {
      const [keyFamily, id] = splitKey(key);
      if (keyFamily === family && !now.has(id)) this.carried.delete(key);
    }
    for (const [id, traffic] of now) {
      const key = `${family}/${id}`;
      const previous = this.carried.get(key);
      if (previous === undefined) {
        this.carried.set(key, { last: traffic, before: ZERO });
        continue;
      }
      const reset =
        rewritten || traffic.packets < previous.last.packets || traffic.bytes < previous.last.bytes;
      this.carried.set(key, {
        last: traffic,
        before: reset ? add(previous.before, previous.last) : previous.before,
      });
    }
  }

  /** Totals by 12-digit container id, both families together; the catch-all under ''. */
  totals(): Map<string, Traffic> {
    const result = new Map<string, Traffic>();
    for (const [key, { last, before }] of this.carried) {
      const [, id] = splitKey(key);
      result.set(id, add(result.get(id) ?? ZERO, add(before, last)));
    }
    return result;
  }
}

function splitKey(key: string): [Family, string] {
  const slash = key.indexOf('/');
  return [Number(key.slice(0, slash)) as Family, key.slice(slash + 1)];
}
