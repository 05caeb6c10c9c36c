// `dockfw run` wired together: event watch + ruleset watch + periodic check → runner → sync.
// Stopping leaves every rule in place (fail closed; the next start takes over).
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { DockerChainsMissingError, FirewallApplyError, type FirewallSync } from '../backends/firewall.js';
import type { Config } from '../config/config.js';
import { ContainerCache } from '../docker/container-cache.js';
import type { DockerClient } from '../docker/docker-client.js';
import type { DaemonObserver } from '../observe/observer.js';
import type { Clock, TimerHandle } from './clock.js';
import { DockerWatch } from './docker-watch.js';
import { exposedGc, GarbagePolicy } from './garbage.js';
import type { MonitorSpawner } from './nft-monitor.js';
import { RulesetWatch } from './ruleset-watch.js';
import { SyncRunner, type SyncReason } from './runner.js';
import { createSync, DockerUnavailableError } from './sync.js';

export interface DaemonOptions {
  readonly config: Config;
  readonly docker: DockerClient;
  readonly firewall: FirewallSync;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Told about every sync and connection change (status, readiness, metrics). */
  readonly observer?: DaemonObserver;
  /** Starts `nft monitor`, so outside changes are repaired at once; absent: the periodic check alone. */
  readonly rulesetMonitor?: MonitorSpawner;
  /** Whether a pid is one of dockfw's own write children (their commits are skipped by the watch). */
  readonly ownWriter?: (pid: number) => boolean;
}

function cronLogger(logger: Logger) {
  return {
    info: (message: string) => logger.info(message),
    warn: (message: string) => logger.warn(message),
    error: (message: string | Error, err?: Error) => logger.error({ err: err ?? message }, String(message)),
    debug: (message: string | Error, err?: Error) => logger.debug({ err: err ?? message }, String(message)),
  };
}

/**
 * One more check this long after a repair the ruleset watch did not ask for
 * (legacy iptables and ipset changes never show in `nft monitor`; or no watch):
 * outside changes come in bursts (a firewalld reload, an admin's script), and
 * a check that lands among them puts back only what was done by then. Without
 * it the rest would wait a whole period (a minute by default).
 */
export const RECHECK_AFTER_REPAIR_MS = 2000;
/**
 * Rechecks in a row, each after a sync that repaired again; then the period
 * resumes (a writer that keeps undoing dockfw's rules, another firewall manager,
 * must not make it write every 2 s, nor put every check's deep read ten times closer).
 */
export const MAX_RECHECKS = 3;

export class Daemon {
  private readonly runner: SyncRunner;
  private readonly watch: DockerWatch;
  private readonly rulesetWatch: RulesetWatch | undefined;
  private periodic: ScheduledTask | undefined;
  private lastFailure: string | undefined;
  private recheck: TimerHandle | undefined;
  /** The running sync repaired someone else's change (not at the watch's asking). */
  private repairedNow = false;
  /** Rechecks asked for since the last check that found nothing to repair. */
  private rechecks = 0;
  private stopped = false;

  constructor(private readonly options: DaemonOptions) {
    const { logger, docker, clock, observer } = options;
    // Fed by the event watch, read by the sync: an event sync inspects only what events named.
    const cache = new ContainerCache(docker);
    const sync = createSync({
      ...options,
      cache,
      kernelWatched: () => this.rulesetWatch?.watching === true,
      onRepair: (reasons) => {
        if (!reasons.has('watch')) this.repairedNow = true;
      },
    });
    let connections = 0;
    const garbage = new GarbagePolicy({ gc: exposedGc() });
    this.runner = new SyncRunner({
      clock,
      sync: async (reasons) => {
        const started = clock.now();
        this.repairedNow = false;
        try {
          await sync(reasons);
        } catch (error) {
          observer?.syncFinished?.(clock.now() - started, error);
          throw error;
        } finally {
          this.afterSync(reasons);
        }
        const tookMs = clock.now() - started;
        observer?.syncFinished?.(tookMs);
        garbage.syncFinished(tookMs);
        if (this.lastFailure !== undefined) logger.info('sync succeeded again');
        this.lastFailure = undefined;
      },
      onError: (error, failures, retryInMs) => this.reportFailure(error, failures, retryInMs),
    });
    this.watch = new DockerWatch({
      docker,
      runner: this.runner,
      logger,
      clock,
      follower: cache,
      onConnected: async () => {
        observer?.dockerConnected?.(++connections === 1);
        const info = await docker.info();
        logger.info(
          {
            version: info.serverVersion,
            api: info.apiVersion,
            firewallBackend: info.firewallBackend ?? 'unknown',
          },
          'docker engine',
        );
      },
      onDisconnected: (error) => observer?.dockerDisconnected?.(error),
    });
    this.rulesetWatch =
      options.rulesetMonitor &&
      new RulesetWatch({
        spawn: options.rulesetMonitor,
        runner: this.runner,
        logger: logger.child({ component: 'ruleset-watch' }),
        clock,
        ...(options.ownWriter ? { ownWriter: options.ownWriter } : {}),
      });
  }

  /** Syncs started so far (for tests and metrics). */
  get syncs(): number {
    return this.runner.syncs;
  }

  start(): void {
    const { config, logger } = this.options;
    this.watch.start();
    this.rulesetWatch?.start();
    this.periodic = cron.schedule(config.resync, () => this.runner.request('periodic'), {
      name: 'dockfw-periodic-check',
      logger: cronLogger(logger.child({ component: 'cron' })),
    });
    logger.info(
      { policy: config.defaultPolicy, resync: config.resync, externalInterfaces: config.externalInterfaces },
      'dockfw started',
    );
  }

  /** Stops watching and syncing; rules stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.recheck !== undefined) this.options.clock.clearTimeout(this.recheck);
    this.recheck = undefined;
    await this.periodic?.stop();
    await this.periodic?.destroy();
    await Promise.all([this.watch.stop(), this.rulesetWatch?.stop(), this.runner.stop()]);
  }

  /** After a repair, one check soon (one pending at a time, MAX_RECHECKS in a row). */
  private afterSync(reasons: ReadonlySet<SyncReason>): void {
    if (!this.repairedNow) {
      // A sync after events alone does not look at the kernel: it says nothing of outside writers.
      if (reasons.has('periodic') && this.recheck === undefined) this.rechecks = 0;
      return;
    }
    if (this.stopped || this.recheck !== undefined || this.rechecks >= MAX_RECHECKS) return;
    this.rechecks++;
    this.recheck = this.options.clock.setTimeout(() => {
      this.recheck = undefined;
      this.runner.request('periodic');
    }, RECHECK_AFTER_REPAIR_MS);
  }

  private reportFailure(error: unknown, failures: number, retryInMs: number): void {
    const { logger } = this.options;
    const message = error instanceof Error ? error.message : String(error);
    const fields = { failures, retryInMs, error: message };
    // One line per kind of failure, not one per retry.
    const repeated = this.lastFailure === message;
    this.lastFailure = message;
    const knownOutage =
      error instanceof DockerUnavailableError && (error.connectionLost || !this.watch.connected);
    if (repeated || knownOutage) {
      // Already said, here or by the watch ("docker unreachable").
      logger.debug(fields, 'sync failed again');
    } else if (error instanceof DockerUnavailableError) {
      logger.warn(fields, 'sync failed: cannot read containers from docker');
    } else if (error instanceof DockerChainsMissingError) {
      logger.warn(fields, "waiting for Docker's iptables chains");
    } else if (error instanceof FirewallApplyError) {
      const where = { family: error.family, variant: error.variant, line: error.offendingLine };
      const tool = error.backend === 'iptables' ? 'iptables-restore' : 'nft';
      logger.error({ ...fields, ...where }, `${tool} rejected the rules`);
    } else {
      logger.error(fields, 'sync failed');
    }
  }
}
