// When the daemon collects: after a long sync, or once the heap grew by the
// threshold since the last collection; never where node exposes no collector.
import { describe, expect, it } from 'vitest';
import { COLLECT_AFTER_GROWTH_BYTES, GarbagePolicy, HEAVY_SYNC_MS } from './garbage.js';

function policy(options: { gc?: boolean } = {}) {
  let used = 100e6;
  let collections = 0;
  const queued: (() => void)[] = [];
  const keeper = new GarbagePolicy({
    ...(options.gc === false
      ? {}
      : {
          gc: () => {
            collections++;
            used = 90e6;
          },
        }),
    heapUsed: () => used,
    soon: (run) => queued.push(run),
  });
  return {
    keeper,
    grow: (bytes: number) => (used += bytes),
    runQueued: () => queued.splice(0).forEach((run) => run()),
    queued: () => queued.length,
    collections: () => collections,
  };
}

describe('GarbagePolicy', () => {
  it('collects after a sync once the heap grew by the threshold, then measures from the collection', () => {
    const p = policy();
    p.grow(COLLECT_AFTER_GROWTH_BYTES - 1);
    p.keeper.syncFinished(10);
    expect(p.queued()).toBe(0);
    p.grow(1);
    p.keeper.syncFinished(10);
    p.keeper.syncFinished(10);
    expect(p.queued()).toBe(1);
    p.runQueued();
    expect(p.collections()).toBe(1);
    // Measured from 90 MB now: growing back to 100 MB is not the threshold.
    p.grow(10e6);
    p.keeper.syncFinished(10);
    expect(p.queued()).toBe(0);
  });

  it('collects after a long sync whatever the heap says', () => {
    const p = policy();
    p.keeper.syncFinished(HEAVY_SYNC_MS);
    p.runQueued();
    expect(p.collections()).toBe(1);
  });

  it('never collects where node exposes no collector', () => {
    const p = policy({ gc: false });
    p.grow(10 * COLLECT_AFTER_GROWTH_BYTES);
    p.keeper.syncFinished(10 * HEAVY_SYNC_MS);
    expect(p.queued()).toBe(0);
  });
});
