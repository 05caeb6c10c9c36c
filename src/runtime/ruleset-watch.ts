// Notices someone else changing the firewall within a fraction of a second on
// hosts whose rules live in nf_tables (iptables-nft, native nft): it follows
// `nft monitor` and asks the runner for a 'watch' sync after a burst of
// relevant changes settles. That sync reads and compares and writes only on
// drift, so it cannot loop; and changes seen while dockfw itself writes (and
// just after) are taken as its own and ignored, so they do not even cost a
// read. (An outside change in that instant is left to the next check.)
// A monitor that dies is restarted with capped backoff (logged once per state
// change); without nft at all the periodic check is left to find drift.
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from './clock.js';
import { concernsDockfw, type MonitorProcess, type MonitorSpawner } from './nft-monitor.js';

export interface WatchRequester {
  request(reason: 'watch'): void;
}

export interface RulesetWatchOptions {
  readonly spawn: MonitorSpawner;
  readonly runner: WatchRequester;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Quiet time after the last change before asking for a sync. */
  readonly debounceMs?: number;
  /** A steady stream of changes still asks at least this often. */
  readonly maxDelayMs?: number;
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** A monitor that has run this long counts as working (resets the backoff, logs that it is back). */
  readonly stableMs?: number;
  /** After dockfw's own write, changes seen within this long are its own (monitor lag). */
  readonly ownWriteGraceMs?: number;
}

type State = 'starting' | 'watching' | 'restarting' | 'off';

export class RulesetWatch {
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private state: State = 'starting';
  private stopped = false;
  private monitor: MonitorProcess | undefined;
  private loop: Promise<void> | undefined;
  private debounce: TimerHandle | undefined;
  private firstChangeAt: number | undefined;
  private sleeping: { timer: TimerHandle; wake: () => void } | undefined;
  private changes = 0;
  private ownWrites = 0;
  private seenDuringOwnWrite = false;
  private ignoreUntil = -Infinity;

  constructor(private readonly options: RulesetWatchOptions) {
    this.debounceMs = options.debounceMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 500;
  }

  /** Relevant change lines seen so far (for tests). */
  get changesSeen(): number {
    return this.changes;
  }

  get watching(): boolean {
    return this.state === 'watching';
  }

  /**
   * Runs one of dockfw's own firewall syncs. Changes seen meanwhile are its
   * own when it wrote (`wrote(result)`, or it failed half-way), else someone
   * else's, and then they ask for a sync as usual.
   */
  async whileWriting<T>(write: () => Promise<T>, wrote: (result: T) => boolean): Promise<T> {
    this.ownWrites++;
    let ours = true;
    try {
      const result = await write();
      ours = wrote(result);
      return result;
    } finally {
      this.ownWrites--;
      if (this.ownWrites === 0) {
        if (ours) this.ignoreUntil = this.options.clock.now() + (this.options.ownWriteGraceMs ?? 100);
        else if (this.seenDuringOwnWrite) this.changed();
        this.seenDuringOwnWrite = false;
      }
    }
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.monitor?.stop();
    this.cancelDebounce();
    if (this.sleeping) {
      this.options.clock.clearTimeout(this.sleeping.timer);
      this.sleeping.wake();
    }
    await this.loop;
  }

  private async run(): Promise<void> {
    const { clock, logger } = this.options;
    const initial = this.options.retryInitialMs ?? 1000;
    const max = this.options.retryMaxMs ?? 30_000;
    const stableMs = this.options.stableMs ?? 2000;
    let attempt = 0;
    while (!this.stopped) {
      const monitor = this.options.spawn();
      this.monitor = monitor;
      const startedAt = clock.now();
      // Marked working once it has stayed up a while, so a monitor that dies
      // at once again and again is reported once, not on every attempt.
      const stable = clock.setTimeout(() => this.markWatching(), stableMs);
      let failure: string | undefined;
      try {
        for await (const line of monitor.lines) {
          if (this.stopped) break;
          if (concernsDockfw(line)) this.seen();
        }
      } catch (error) {
        failure = error instanceof Error ? error.message : String(error);
      } finally {
        clock.clearTimeout(stable);
        monitor.stop();
      }
      const exit = await monitor.exited;
      if (this.stopped) break;
      if (exit.error?.code === 'ENOENT') {
        this.setState('off');
        logger.warn('nft not found: not watching the ruleset; the periodic check finds outside changes');
        return;
      }
      if (clock.now() - startedAt >= stableMs) attempt = 0;
      const retryInMs = Math.min(max, initial * 2 ** attempt);
      attempt++;
      this.setState('restarting', {
        code: exit.code,
        signal: exit.signal,
        error: failure ?? (exit.stderr.trim().split('\n').pop() || undefined),
        retryInMs,
      });
      await this.sleep(retryInMs);
      // Whatever changed while nobody watched: look once.
      if (!this.stopped) this.options.runner.request('watch');
    }
  }

  private markWatching(): void {
    if (!this.stopped) this.setState('watching');
  }

  private setState(next: State, detail: Record<string, unknown> = {}): void {
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    const { logger } = this.options;
    if (next === 'watching') {
      logger.info({ after: previous }, 'watching the nftables ruleset for outside changes');
    } else if (next === 'restarting') {
      logger.warn(detail, 'nft monitor stopped: restarting it; the periodic check covers the gap');
    }
  }

  private seen(): void {
    if (this.ownWrites > 0) this.seenDuringOwnWrite = true;
    else if (this.options.clock.now() >= this.ignoreUntil) this.changed();
  }

  /** Trailing debounce, capped so a steady stream still asks every maxDelayMs. */
  private changed(): void {
    this.changes++;
    const { clock } = this.options;
    const now = clock.now();
    this.firstChangeAt ??= now;
    const due = Math.min(now + this.debounceMs, this.firstChangeAt + this.maxDelayMs);
    this.cancelDebounce();
    this.debounce = clock.setTimeout(
      () => {
        this.debounce = undefined;
        this.firstChangeAt = undefined;
        if (!this.stopped) this.options.runner.request('watch');
      },
      Math.max(0, due - now),
    );
  }

  private cancelDebounce(): void {
    if (this.debounce) this.options.clock.clearTimeout(this.debounce);
    this.debounce = undefined;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.options.clock.setTimeout(() => {
        this.sleeping = undefined;
        resolve();
      }, ms);
      this.sleeping = { timer, wake: resolve };
    });
  }
}
