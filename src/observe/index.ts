// Observability for `dockfw run` in one call: the state, the metrics, and the
// HTTP server on DOCKFW_LISTEN, plus the one observer the daemon is given.
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { DropLog } from '../drops/log.js';
import { readDropRecords, type ReadRecords } from '../drops/read.js';
import type { Family } from '../docker/snapshot.js';
import { startObserveServer, type ObserveServer } from './http.js';
import { DaemonMetrics, type CounterReader } from './metrics.js';
import type { DaemonObserver } from './observer.js';
import { DaemonState } from './state.js';

export interface Observability {
  readonly observer: DaemonObserver;
  readonly state: DaemonState;
  readonly metrics: DaemonMetrics;
  /** Undefined when DOCKFW_LISTEN is empty. */
  readonly server: ObserveServer | undefined;
  close(): Promise<void>;
}

/** Every hook goes to each observer in turn; one failing hook never breaks a sync. */
export function fanOut(observers: readonly DaemonObserver[], logger: Logger): DaemonObserver {
  const call = <K extends keyof DaemonObserver>(
    hook: K,
    args: Parameters<NonNullable<DaemonObserver[K]>>,
  ) => {
    for (const observer of observers) {
      try {
        (observer[hook] as ((...a: unknown[]) => void) | undefined)?.apply(observer, args);
      } catch (error) {
        logger.error(
          { hook, error: error instanceof Error ? error.message : String(error) },
          'observer failed',
        );
      }
    }
  };
  return {
    syncApplied: (...args) => call('syncApplied', args),
    driftRepaired: (...args) => call('driftRepaired', args),
    syncFinished: (...args) => call('syncFinished', args),
    dockerConnected: (...args) => call('dockerConnected', args),
    dockerDisconnected: (...args) => call('dockerDisconnected', args),
  };
}

function recordsAndCapacity(read: ReadRecords): {
  records: ReadRecords['records'];
  capacity: Map<Family, number>;
} {
  const capacity = new Map<Family, number>();
  for (const source of read.sources) for (const [family, size] of source.capacity) capacity.set(family, size);
  return { records: read.records, capacity };
}

export async function startObservability(options: {
  readonly config: Config;
  readonly logger: Logger;
  /** The firewall's rule counters, read at scrape time. */
  readonly readCounters: CounterReader;
  readonly version: string;
}): Promise<Observability> {
  const { config, logger, readCounters, version } = options;
  const state = new DaemonState({ version, defaultPolicy: config.defaultPolicy });
  const metrics = new DaemonMetrics({
    state,
    version,
    logger,
    processMetrics: true,
    readCounters,
    readRecords: (backend) => readDropRecords(backend).then((read) => recordsAndCapacity(read)),
  });
  let dropLog: DropLog | undefined;
  if (config.logDrops) {
    dropLog = new DropLog({
      logger,
      desired: () => state.lastDesired,
      read: async () => {
        const backend = state.backend;
        return backend === undefined ? undefined : (await readDropRecords(backend)).records;
      },
    });
    dropLog.start();
  }
  const server =
    config.listen === null ? undefined : await startObserveServer(config.listen, { state, metrics, logger });
  if (server !== undefined) {
    logger.info(
      { listen: `${server.address.address}:${server.address.port}` },
      'serving /healthz, /readyz, /metrics, /status',
    );
  }
  return {
    observer: fanOut([state, metrics], logger),
    state,
    metrics,
    server,
    close: async () => {
      await dropLog?.stop();
      await server?.close();
    },
  };
}
