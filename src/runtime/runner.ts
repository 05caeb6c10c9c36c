// The only place that decides when to sync. Requests (events, the periodic
// check, reconnects) collapse: one sync runs, at most one waits. Starts are
// rate-limited by a token bucket: `burst` may follow each other at once (a
// container's "connect" then "start" should not wait), then one per
// `minIntervalMs`, so an event storm costs a few syncs.
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
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
}

export interface RequestOptions {
  /** Forget earlier failures' backoff (the cause may be gone, e.g. Docker is back). */
  readonly resetBackoff?: boolean;
}

export class SyncRunner {
  private readonly minIntervalMs: number;
  private readonly burst: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private pending = new Set<SyncReason>();
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
    this.burst = options.burst ?? 2;
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
    this.pending.add(reason);
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
    await this.running;
  }

  private schedule(): void {
    if (this.stopped || this.running || this.pending.size === 0) return;
    const now = this.options.clock.now();
    const tokens = this.availableTokens(now);
    const tokenDue = tokens >= 1 ? now : now + Math.ceil((1 - tokens) * this.minIntervalMs);
    const due = Math.max(now, tokenDue, this.notBefore);
    if (this.timer && this.timerDue <= due) return;
    this.cancelTimer();
    this.timerDue = due;
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      this.start();
    }, due - now);
  }

  /** Tokens in the bucket at `now` (refilled one per interval, up to the burst). */
  private availableTokens(now: number): number {
    return Math.min(this.burst, this.tokens + (now - this.tokensAt) / this.minIntervalMs);
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
    const now = this.options.clock.now();
    this.tokens = this.availableTokens(now) - 1;
    this.tokensAt = now;
    this.syncCount++;
    this.running = this.runOnce(reasons).finally(() => {
      this.running = undefined;
      this.schedule();
    });
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
