// Notices someone else changing the firewall within a fraction of a second on
// hosts whose rules live in nf_tables (iptables-nft, native nft): it follows
// `nft monitor` and asks the runner for a 'watch' sync after a burst of
// relevant commits settles. That sync reads and compares and writes only on
// drift, so it cannot loop, and it compares the kernel's state: nothing is
// dropped for having come soon after a write of dockfw's own.
//
// The monitor's output is taken one transaction at a time: every line up to a
// `# new generation N by process P (name)` line is one commit. A commit asks
// for a check when one of its lines concerns dockfw, when it printed no object
// at all (nft 1.0.6 sometimes prints nothing for an element added: a blind
// commit could be anything), or when its generation is not the one after the
// last seen (commits were missed). Commits that only touch other tables
// (Docker's DNAT on every start) are ignored. The only commits skipped as
// dockfw's own are those made by a process dockfw started to write (its pid,
// see own-writers.ts), where pids can be compared at all.
//
// A monitor that exits (nft 1.0.6 crashes under load) asks for a check at
// once, is restarted at once the first time and with capped backoff when it
// keeps dying, and asks again once the new one has had time to subscribe;
// state changes are logged once. Without nft at all the periodic check is
// left to find drift.
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from './clock.js';
import {
  concernsDockfw,
  isObjectLine,
  parseGeneration,
  type MonitorProcess,
  type MonitorSpawner,
} from './nft-monitor.js';

export interface WatchRequester {
  request(reason: 'watch'): void;
}

export interface RulesetWatchOptions {
  readonly spawn: MonitorSpawner;
  readonly runner: WatchRequester;
  readonly logger: Logger;
  readonly clock: Clock;
  /**
   * Whether the process that made a commit (its pid in the generation line) is
   * one dockfw started to write; such a commit is its own and skipped. Absent:
   * every commit is judged by its lines alone.
   */
  readonly ownWriter?: (pid: number) => boolean;
  /** Quiet time after the last change before asking for a sync. */
  readonly debounceMs?: number;
  /** A steady stream of changes still asks at least this often. */
  readonly maxDelayMs?: number;
  /** Backoff for a monitor that keeps dying (the first restart is immediate). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** A monitor that has run this long counts as working (resets the backoff, logs that it is back). */
  readonly stableMs?: number;
  /** A restarted monitor that has run this long has subscribed: look once more then. */
  readonly upMs?: number;
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
  private own = 0;
  // The transaction being printed: object lines so far, and whether one concerns dockfw.
  private objects = 0;
  private relevant = false;
  private lastGeneration: number | undefined;

  constructor(private readonly options: RulesetWatchOptions) {
    this.debounceMs = options.debounceMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 500;
  }

  /** Commits passed on as changes so far (for tests). */
  get changesSeen(): number {
    return this.changes;
  }

  /** Commits skipped as dockfw's own writes so far (for tests). */
  get ownCommitsSkipped(): number {
    return this.own;
  }

  get watching(): boolean {
    return this.state === 'watching';
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
    const { clock, logger, runner } = this.options;
    const initial = this.options.retryInitialMs ?? 1000;
    const max = this.options.retryMaxMs ?? 30_000;
    const stableMs = this.options.stableMs ?? 2000;
    const upMs = this.options.upMs ?? 250;
    let attempt = 0;
    let restarted = false;
    while (!this.stopped) {
      const monitor = this.options.spawn();
      this.monitor = monitor;
      this.objects = 0;
      this.relevant = false;
      const startedAt = clock.now();
      // Marked working once it has stayed up a while, so a monitor that dies
      // at once again and again is reported once, not on every attempt.
      const stable = clock.setTimeout(() => this.markWatching(), stableMs);
      // After a gap: whatever changed before this one subscribed, look once more.
      const up = restarted
        ? clock.setTimeout(() => {
            if (!this.stopped) runner.request('watch');
          }, upMs)
        : undefined;
      let failure: string | undefined;
      try {
        for await (const line of monitor.lines) {
          if (this.stopped) break;
          this.line(line);
        }
      } catch (error) {
        failure = error instanceof Error ? error.message : String(error);
      } finally {
        clock.clearTimeout(stable);
        if (up) clock.clearTimeout(up);
        monitor.stop();
      }
      const exit = await monitor.exited;
      if (this.stopped) break;
      if (exit.error?.code === 'ENOENT') {
        this.setState('off');
        logger.warn('nft not found: not watching the ruleset; the periodic check finds outside changes');
        return;
      }
      // Nobody watches now: look at once, not only after the restart.
      runner.request('watch');
      if (clock.now() - startedAt >= stableMs) attempt = 0;
      const retryInMs = attempt === 0 ? 0 : Math.min(max, initial * 2 ** (attempt - 1));
      attempt++;
      this.setState('restarting', {
        code: exit.code,
        signal: exit.signal,
        error: failure ?? (exit.stderr.trim().split('\n').pop() || undefined),
        retryInMs,
      });
      if (retryInMs > 0) await this.sleep(retryInMs);
      restarted = true;
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
      logger.warn(detail, 'nft monitor stopped: checking the ruleset and restarting it');
    }
  }

  /** One monitor line: part of a transaction, or its end. */
  private line(line: string): void {
    const generation = parseGeneration(line);
    if (generation === undefined) {
      // `# ERROR: We lost some netlink events!` (the socket's buffer overflowed): commits
      // were missed, maybe inside dockfw's table. Check now; the next generation seen
      // is not compared with the last one.
      if (/^#\s*ERROR\b/i.test(line.trim())) {
        this.lastGeneration = undefined;
        this.changed();
        return;
      }
      if (!isObjectLine(line)) return;
      this.objects++;
      if (concernsDockfw(line)) this.relevant = true;
      return;
    }
    const expected = this.lastGeneration === undefined ? undefined : (this.lastGeneration + 1) >>> 0;
    const missed = expected !== undefined && generation.id !== expected;
    this.lastGeneration = generation.id;
    const blind = this.objects === 0;
    const relevant = this.relevant || blind || missed;
    this.objects = 0;
    this.relevant = false;
    if (!relevant) return;
    // Identity, not time: only a commit made by dockfw's own writer is its own.
    if (!missed && this.options.ownWriter?.(generation.pid) === true) {
      this.own++;
      this.options.logger.debug(
        { generation: generation.id, pid: generation.pid },
        'own commit: not checked',
      );
      return;
    }
    this.changed();
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
