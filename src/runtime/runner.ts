// The only place that decides when to sync. Requests (events, the periodic
// check, reconnects) collapse: one sync runs, at most one waits. Starts are
// rate-limited by a token bucket: `burst` may follow each other at once (a
// container's "connect" then "start" should not wait), then one per
// `minIntervalMs`, so an event storm costs a few syncs. A storm that goes on
// (more than `slowDownAfter` starts in a row that had to wait for a token or
// for the previous sync) doubles the interval up to `maxIntervalMs`. New
// containers are closed (the catch-all) until their sync, so slowing down
// delays, never opens; but an allowed source must be answered within 1 s of its
// container's start, so the cap stays well under that: a sync after events
// costs what they changed, so a slower pace would save little.
// A failed sync is retried with capped exponential backoff.
import type { Clock, TimerHandle } from './clock.js';

/** Why a sync was asked for; `watch`: the kernel's ruleset changed under dockfw. */
export type SyncReason = 'startup' | 'event' | 'periodic' | 'retry' | 'reconnect' | 'watch';

export interface RunnerOptions {
  /** One full sync; the reasons are every request it answers. */
  readonly sync: (reasons: ReadonlySet<SyncReason>) => Promise<void>;
  readonly onError: (error: unknown, failures: number, retryInMs: number) => void;
  readonly clock: Clock;
  /** Sustained rate: at most one start per this many ms (default 100). */
  readonly minIntervalMs?: number;
  /** Starts allowed back to back before the rate applies (default 2). */
  readonly burst?: number;
  /** A long storm's interval grows up to this (default 400). */
  readonly maxIntervalMs?: number;
  /** Waiting starts in a row before the interval starts growing (default 10). */
  readonly slowDownAfter?: number;
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
}

export interface RequestOptions {
  /** Forget earlier failures' backoff (the cause may be gone, e.g. Docker is back). */
  readonly resetBackoff?: boolean;
  /**
   * Answer without waiting for a token (still one sync at a time, and never during a
   * failure's backoff): a container was created and will open its ports at its start.
   * It takes a token when one is there and never borrows one.
   */
  readonly urgent?: boolean;
}

export class SyncRunner {
  private readonly minIntervalMs: number;
  private readonly maxIntervalMs: number;
  private readonly slowDownAfter: number;
  private readonly burst: number;
  /** Idle this long ends a storm. */
  private readonly lullMs: number;
  /** The current interval: minIntervalMs, more during a long storm. */
  private intervalMs: number;
  /** Starts in a row that had to wait (for a token, or for the sync before). */
  private waitedInARow = 0;
  private lastFinishedAt = -Infinity;
  /** Since when nothing runs or waits; undefined while busy. */
  private idleFrom: number | undefined = -Infinity;
  /** How long the runner sat idle before the request the next start answers. */
  private lastIdleMs = Infinity;
  /** The scheduled start waits for a token (not for a backoff). */
  private waitingForToken = false;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private pending = new Set<SyncReason>();
  /** An urgent request waits in `pending`. */
  private urgent = false;
  private running: Promise<void> | undefined;
  private timer: TimerHandle | undefined;
  private timerDue = Infinity;
  private tokens: number;
  private tokensAt: number;
  private failures = 0;
  private notBefore = -Infinity;
  private stopped = false;
  private syncCount = 0;

  constructor(private readonly options: RunnerOptions) {
    this.minIntervalMs = options.minIntervalMs ?? 100;
    this.maxIntervalMs = Math.max(this.minIntervalMs, options.maxIntervalMs ?? 400);
    this.slowDownAfter = options.slowDownAfter ?? 10;
    this.intervalMs = this.minIntervalMs;
    this.burst = options.burst ?? 2;
    this.lullMs = Math.max(500, this.burst * this.minIntervalMs);
    this.tokens = this.burst;
    this.tokensAt = options.clock.now();
    this.retryInitialMs = options.retryInitialMs ?? 1000;
    this.retryMaxMs = options.retryMaxMs ?? 30_000;
  }

  /** Number of syncs started so far. */
  get syncs(): number {
    return this.syncCount;
  }

  request(reason: SyncReason, options: RequestOptions = {}): void {
    if (this.stopped) return;
    if (this.idleFrom !== undefined && !this.running && this.pending.size === 0) {
      const now = this.options.clock.now();
      this.lastIdleMs = now - this.idleFrom;
      this.idleFrom = undefined;
      if (this.lastIdleMs >= this.lullMs) this.endStorm(now);
    }
    this.pending.add(reason);
    if (options.urgent === true) this.urgent = true;
    if (options.resetBackoff) {
      this.failures = 0;
      this.notBefore = -Infinity;
    }
    this.schedule();
  }

  /** Stops scheduling and waits for a running sync to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer();
    this.pending.clear();
    this.urgent = false;
    await this.running;
  }

  private schedule(): void {
    if (this.stopped || this.running || this.pending.size === 0) return;
    const now = this.options.clock.now();
    const tokens = this.availableTokens(now);
    const tokenDue = tokens >= 1 || this.urgent ? now : now + Math.ceil((1 - tokens) * this.intervalMs);
    const due = Math.max(now, tokenDue, this.notBefore);
    if (this.timer && this.timerDue <= due) return;
    this.cancelTimer();
    this.timerDue = due;
    this.waitingForToken = tokens < 1 && !this.urgent;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.start();
    }, due - now);
  }

  /** Tokens in the bucket at `now` (refilled one per interval, up to the burst). */
  private availableTokens(now: number): number {
    return Math.min(this.burst, this.tokens + (now - this.tokensAt) / this.intervalMs);
  }

  private cancelTimer(): void {
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }

  private start(): void {
    if (this.stopped || this.running) return;
    const reasons = this.pending;
    this.pending = new Set();
    const urgent = this.urgent;
    this.urgent = false;
    const now = this.options.clock.now();
    const available = this.availableTokens(now);
    // Slow syncs never run out of tokens; starting right after one finished is waiting too.
    this.pace(!urgent && (this.waitingForToken || now - this.lastFinishedAt < this.minIntervalMs));
    this.waitingForToken = false;
    this.tokens = urgent ? Math.max(0, available - 1) : available - 1;
    this.tokensAt = now;
    this.syncCount++;
    this.running = this.runOnce(reasons).finally(() => {
      this.running = undefined;
      this.lastFinishedAt = this.options.clock.now();
      if (this.pending.size === 0) this.idleFrom = this.lastFinishedAt;
      this.schedule();
    });
  }

  /**
   * A real lull (idle, nothing pending, for 500 ms and two minimum intervals) ends a
   * storm at once: the interval is back to the minimum and the bucket full, so the
   * next request is answered without waiting. The lull does not grow with a storm's
   * slowed interval: otherwise a steady trickle of starts a few seconds apart would
   * keep the runner slow for good.
   */
  private endStorm(now: number): void {
    this.waitedInARow = 0;
    this.intervalMs = this.minIntervalMs;
    this.tokens = this.burst;
    this.tokensAt = now;
  }

  /** Slower while a storm goes on. Short gaps between a storm's events do not count as a lull. */
  private pace(waited: boolean): void {
    this.lastIdleMs = 0;
    if (!waited) return;
    this.waitedInARow++;
    if (this.waitedInARow > this.slowDownAfter) {
      this.intervalMs = Math.min(this.maxIntervalMs, this.intervalMs * 2);
    }
  }

  private async runOnce(reasons: ReadonlySet<SyncReason>): Promise<void> {
    try {
      await this.options.sync(reasons);
      this.failures = 0;
      this.notBefore = -Infinity;
    } catch (error) {
      this.failures++;
      const retryInMs = Math.min(this.retryMaxMs, this.retryInitialMs * 2 ** (this.failures - 1));
      this.notBefore = this.options.clock.now() + retryInMs;
      this.pending.add('retry');
      this.options.onError(error, this.failures, retryInMs);
    }
  }
}
