// When the daemon asks V8 for a full collection. A sync that read everything
// (the startup read, a deep check, the check after the ruleset watch restarts)
// leaves tens of MB of garbage in an old space V8 grew for it, and V8 collects
// an idle process's old space only under allocation pressure: the garbage
// stays resident. One collection after such a sync gives most of it back.
import { getHeapStatistics } from 'node:v8';

/** Heap grown this much since the last collection: collect (a full read at 5,000 containers grows it 60-100 MB). */
export const COLLECT_AFTER_GROWTH_BYTES = 32 * 1024 * 1024;
/** A sync this long read a lot, whatever the heap says now (V8 may have collected part of it). */
export const HEAVY_SYNC_MS = 1000;

export interface GarbagePolicyOptions {
  /** `globalThis.gc` where node exposes it (`--expose-gc`, as the image runs it); absent: never collects. */
  readonly gc?: (() => void) | undefined;
  readonly heapUsed?: () => number;
  /** Runs the collection after the current turn (the sync's callers finish first). */
  readonly soon?: (run: () => void) => void;
}

export class GarbagePolicy {
  private readonly heapUsed: () => number;
  private readonly soon: (run: () => void) => void;
  private usedAfterCollect: number;
  private pending = false;

  constructor(private readonly options: GarbagePolicyOptions = {}) {
    this.heapUsed = options.heapUsed ?? (() => getHeapStatistics().used_heap_size);
    this.soon = options.soon ?? ((run) => setImmediate(run));
    this.usedAfterCollect = this.heapUsed();
  }

  /** After each sync: collects soon when it was long or the heap grew by the threshold since the last collection. */
  syncFinished(tookMs: number): void {
    const gc = this.options.gc;
    if (gc === undefined || this.pending) return;
    if (tookMs < HEAVY_SYNC_MS && this.heapUsed() - this.usedAfterCollect < COLLECT_AFTER_GROWTH_BYTES)
      return;
    this.pending = true;
    this.soon(() => {
      this.pending = false;
      gc();
      this.usedAfterCollect = this.heapUsed();
    });
  }
}

/** The process's collector, where node exposes one. */
export function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? () => (gc as () => void)() : undefined;
}
