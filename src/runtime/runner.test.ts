import { describe, expect, it } from 'vitest';
import { FakeClock } from './fake-clock.js';
import { SyncRunner, type SyncReason } from './runner.js';

interface Harness {
  clock: FakeClock;
  runner: SyncRunner;
  starts: { at: number; reasons: SyncReason[] }[];
  errors: { failures: number; retryInMs: number }[];
  maxConcurrent: () => number;
}

/** A runner whose sync takes `durationMs` of fake time and fails while `fail()` says so. */
function harness(durationMs: number, fail: () => boolean = () => false): Harness {
  const clock = new FakeClock();
  const starts: Harness['starts'] = [];
  const errors: Harness['errors'] = [];
  let active = 0;
  let peak = 0;
  const runner = new SyncRunner({
    clock,
    minIntervalMs: 100,
    retryInitialMs: 1000,
    retryMaxMs: 8000,
    sync: async (reasons) => {
      starts.push({ at: clock.now(), reasons: [...reasons].sort() });
      active++;
      peak = Math.max(peak, active);
      await new Promise<void>((resolve) => clock.setTimeout(resolve, durationMs));
      active--;
      if (fail()) throw new Error('docker unreachable');
    },
    onError: (_error, failures, retryInMs) => errors.push({ failures, retryInMs }),
  });
  return { clock, runner, starts, errors, maxConcurrent: () => peak };
}

describe('SyncRunner', () => {
  it('answers an urgent request (a created container) without waiting for a token, after the running sync', async () => {
    const h = harness(10);
    // Two syncs back to back empty the bucket.
    h.runner.request('event');
    await h.clock.advance(12);
    h.runner.request('event');
    await h.clock.advance(12);
    h.runner.request('event');
    h.runner.request('event', { urgent: true });
    await h.clock.advance(5);
    expect(h.starts.map((s) => s.at)).toEqual([0, 12, 24]);
    // A plain request after it waits for the bucket again: urgent never borrows a token.
    h.runner.request('event');
    await h.clock.advance(500);
    expect((h.starts[3]?.at ?? 0) - 24).toBeGreaterThanOrEqual(90);
    expect(h.maxConcurrent()).toBe(1);
  });

  it('answers a burst of requests with one running and one pending sync', async () => {
    const h = harness(50);
    for (let i = 0; i < 200; i++) h.runner.request('event');
    await h.clock.advance(10);
    for (let i = 0; i < 200; i++) h.runner.request(i % 2 ? 'event' : 'periodic');
    await h.clock.advance(1000);
    expect(h.starts).toEqual([
      { at: 0, reasons: ['event'] },
      { at: 50, reasons: ['event', 'periodic'] },
    ]);
    expect(h.maxConcurrent()).toBe(1);
  });

  it('under a storm, starts at most two back to back, then one per interval, never overlapping', async () => {
    const h = harness(30);
    for (let t = 0; t < 1000; t += 7) {
      h.runner.request('event');
      await h.clock.advance(7);
    }
    await h.clock.advance(500);
    // Any three consecutive starts span at least one interval (token bucket of 2).
    const spans = h.starts.slice(2).map((s, i) => s.at - (h.starts[i]?.at ?? 0));
    expect(Math.min(...spans)).toBeGreaterThanOrEqual(100);
    expect(h.starts.length).toBeGreaterThanOrEqual(10);
    expect(h.starts.length).toBeLessThanOrEqual(13);
    expect(h.maxConcurrent()).toBe(1);
  });

  it('does not hold back the second of two quick requests (a container’s connect, then start)', async () => {
    const h = harness(20);
    h.runner.request('event');
    await h.clock.advance(30);
    h.runner.request('event');
    await h.clock.advance(0);
    expect(h.starts.map((s) => s.at)).toEqual([0, 30]);
    h.runner.request('event');
    await h.clock.advance(200);
    // The third within the interval waits for a token.
    expect(h.starts.map((s) => s.at)).toEqual([0, 30, 100]);
  });

  it('does not delay a lone request', async () => {
    const h = harness(10);
    await h.clock.advance(5000);
    h.runner.request('event');
    await h.clock.advance(0);
    expect(h.starts).toEqual([{ at: 5000, reasons: ['event'] }]);
  });

  it('retries a failed sync with capped exponential backoff, then stops retrying once it succeeds', async () => {
    let failing = true;
    const h = harness(0, () => failing);
    h.runner.request('startup');
    await h.clock.advance(1000 + 2000 + 4000 + 8000 + 8000);
    expect(h.errors.map((e) => e.retryInMs)).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(h.starts.map((s) => s.at)).toEqual([0, 1000, 3000, 7000, 15000, 23000]);
    failing = false;
    await h.clock.advance(8000);
    const count = h.starts.length;
    await h.clock.advance(60_000);
    expect(h.starts.length).toBe(count);
    expect(h.starts.at(-1)?.reasons).toEqual(['retry']);
  });

  it('holds new requests back during a backoff unless told the cause is gone', async () => {
    let failing = true;
    const h = harness(0, () => failing);
    h.runner.request('startup');
    await h.clock.advance(1000 + 2000);
    expect(h.starts).toHaveLength(3);
    h.runner.request('event');
    await h.clock.advance(500);
    expect(h.starts).toHaveLength(3);
    failing = false;
    h.runner.request('reconnect', { resetBackoff: true });
    await h.clock.advance(0);
    expect(h.starts).toHaveLength(4);
    expect(h.starts[3]?.reasons).toEqual(['event', 'reconnect', 'retry']);
  });

  it('stop() waits for the running sync and starts no other', async () => {
    const h = harness(300);
    h.runner.request('event');
    await h.clock.advance(10);
    h.runner.request('event');
    let stopped = false;
    const stopping = h.runner.stop().then(() => (stopped = true));
    await h.clock.advance(100);
    expect(stopped).toBe(false);
    await h.clock.advance(300);
    await stopping;
    h.runner.request('event');
    await h.clock.advance(1000);
    expect(h.starts).toHaveLength(1);
  });
});

describe('SyncRunner under a long storm', () => {
  it('slows down after ten waiting starts in a row (up to the cap), and is back to full speed once idle', async () => {
    const h = harness(30);
    for (let t = 0; t < 10_000; t += 7) {
      h.runner.request('event');
      await h.clock.advance(7);
    }
    await h.clock.advance(5000);
    const at = h.starts.map((s) => s.at);
    // The first second as before (2 at once, then one per 100 ms), then 200, then 400 ms apart:
    // never further (a start must be enforced within 1 s), and not one per 100 ms either.
    expect(at.filter((t) => t < 1000).length).toBeGreaterThanOrEqual(10);
    const gaps = at.slice(1).map((t, i) => t - (at[i] ?? 0));
    expect(Math.max(...gaps)).toBeLessThanOrEqual(400);
    expect(gaps.slice(-10).every((gap) => gap >= 400 - 1)).toBe(true);
    expect(h.starts.length).toBeLessThanOrEqual(12 + 9000 / 400 + 1);
    expect(h.maxConcurrent()).toBe(1);

    // Idle long enough to refill: a lone request and its follow-ups run at full speed again.
    await h.clock.advance(10_000);
    const before = h.starts.length;
    const t0 = h.clock.now();
    for (let i = 0; i < 4; i++) {
      h.runner.request('event');
      await h.clock.advance(100);
    }
    expect(h.starts.slice(before).map((s) => s.at - t0)).toEqual([0, 100, 200, 300]);
  });

  it('slows down too when the syncs themselves are slow (tokens refill while one runs)', async () => {
    const h = harness(250);
    for (let t = 0; t < 20_000; t += 7) {
      h.runner.request('event');
      await h.clock.advance(7);
    }
    await h.clock.advance(5000);
    // Without slowing down: one every 250 ms, 80 in all; with it, ten, then 400 ms apart.
    expect(h.starts.length).toBeLessThanOrEqual(10 + 20_000 / 400);
    expect(h.maxConcurrent()).toBe(1);
  });
  it('a lull of 500 ms ends a storm at once, even while slowed (starts a few seconds apart stay fast)', async () => {
    const h = harness(30);
    for (let t = 0; t < 10_000; t += 7) {
      h.runner.request('event');
      await h.clock.advance(7);
    }
    await h.clock.advance(600); // idle past 500 ms, but less than twice the slowed interval
    // A container every 3 s: create, connect and start a few ms apart each time.
    for (let round = 0; round < 6; round++) {
      const t0 = h.clock.now();
      const before = h.starts.length;
      for (let i = 0; i < 3; i++) {
        h.runner.request('event');
        await h.clock.advance(5);
      }
      await h.clock.advance(2985);
      const starts = h.starts.slice(before).map((s) => s.at - t0);
      expect(starts[0]).toBe(0);
      expect(Math.max(...starts)).toBeLessThanOrEqual(300);
    }
  });
});
