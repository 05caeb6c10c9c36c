// DOCKFW_LOG_DROPS=on: the daemon reads the drop records every 10 s and logs
// one line per (source, container, port) that was dropped since the last read,
// at most once a minute each. The message has a fixed shape for fail2ban or
// CrowdSec: `drop src=198.51.100.7 container=web port=8080/tcp dst=203.0.113.1 packets=3`.
import type { Logger } from 'pino';
import type { DesiredState } from '../policy/desired.js';
import { DropAttributor } from './attribute.js';
import type { DropRecord } from './record.js';
import { RateLimiter, RecordTracker } from './tracker.js';

export const DROP_LOG_POLL_MS = 10_000;
export const DROP_LOG_INTERVAL_MS = 60_000;

/** The one line, e.g. `drop src=198.51.100.7 container=web port=8080/tcp dst=203.0.113.1 packets=3`. */
export function dropLine(d: {
  source: string;
  container: string;
  port: number;
  protocol: string;
  destination: string;
  packets: number;
}): string {
  return `drop src=${d.source} container=${d.container} port=${d.port}/${d.protocol} dst=${d.destination} packets=${d.packets}`;
}

export interface DropLogOptions {
  readonly logger: Logger;
  /** The records of the backend in use; undefined before the first sync. */
  readonly read: () => Promise<readonly DropRecord[] | undefined>;
  readonly desired: () => DesiredState | null;
  readonly now?: () => number;
}

export class DropLog {
  private readonly tracker = new RecordTracker();
  private readonly limiter = new RateLimiter(DROP_LOG_INTERVAL_MS);
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly options: DropLogOptions) {}

  start(pollMs = DROP_LOG_POLL_MS): void {
    this.timer = setInterval(() => {
      this.running ??= this.poll()
        .then(() => undefined)
        .finally(() => (this.running = undefined));
    }, pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One read: log what is new (the first read only learns the counters). */
  async poll(): Promise<number> {
    const { logger, read, desired } = this.options;
    const now = (this.options.now ?? Date.now)();
    let records: readonly DropRecord[] | undefined;
    try {
      records = await read();
      if (this.failing) logger.info('drop records readable again');
      this.failing = false;
    } catch (error) {
      if (!this.failing)
        logger.warn(
          { error: error instanceof Error ? error.message : String(error) },
          'cannot read drop records',
        );
      this.failing = true;
      return 0;
    }
    const state = desired();
    if (records === undefined || state === null) return 0;
    const attributor = new DropAttributor(state);
    let logged = 0;
    for (const delta of this.tracker.update(records)) {
      const r = delta.record;
      const container = attributor.owner(r)?.name ?? '-';
      const key = `${r.source} ${container} ${r.protocol} ${r.port}`;
      if (!this.limiter.allow(key, now)) continue;
      logger.info({ component: 'drops' }, dropLine({ ...r, container, packets: delta.packets }));
      logged++;
    }
    return logged;
  }
}
