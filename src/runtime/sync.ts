// One sync: the engine (from the container cache: everything re-read, or only
// what events named) → desired state → firewall. Every side effect of dockfw
// goes through here, one at a time (the runner decides when).
import type { Logger } from 'pino';
import { describePlacement, JUMP_WRONG, type FamilyReport, type FirewallSync } from '../backends/firewall.js';
import type { Config } from '../config/config.js';
import { ContainerCache, type CacheRead } from '../docker/container-cache.js';
import type { DockerClient } from '../docker/docker-client.js';
import type { EngineSnapshot } from '../docker/snapshot.js';
import type { DaemonObserver } from '../observe/observer.js';
import { desiredState, formatLabelError, formatLabelWarning, type DesiredState } from '../policy/desired.js';
import { asError } from '../settle.js';
import type { SyncReason } from './runner.js';

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
]);

/** Listing or inspecting containers failed (usually: the engine is unreachable). */
export class DockerUnavailableError extends Error {
  override readonly name = 'DockerUnavailableError';
  constructor(override readonly cause: unknown) {
    super(`docker: ${cause instanceof Error ? cause.message : String(cause)}`);
  }

  /** The connection itself failed (engine down), rather than the engine answering with an error. */
  get connectionLost(): boolean {
    const code = (this.cause as { code?: unknown } | null)?.code;
    const message = this.cause instanceof Error ? this.cause.message : '';
    return (typeof code === 'string' && CONNECTION_ERRORS.has(code)) || /socket hang up/i.test(message);
  }
}

export interface SyncOptions {
  readonly docker: DockerClient;
  readonly config: Config;
  readonly firewall: FirewallSync;
  readonly logger: Logger;
  readonly observer?: DaemonObserver;
  /**
   * The informer the event watch feeds. Absent: a private one nothing feeds, so
   * every sync lists and inspects everything.
   */
  readonly cache?: ContainerCache;
  /** Whether the ruleset watch follows the kernel's commits now (for the periodic check). */
  readonly kernelWatched?: () => boolean;
  /** Told when a write put back someone else's change (drift, or a repair carried with Docker's). */
  readonly onRepair?: (reasons: ReadonlySet<SyncReason>) => void;
}

/** Syncs asked for by events alone always re-read just what the events named (see engineRead for the rest). */
export function needsFullRead(reasons: ReadonlySet<SyncReason>): boolean {
  return [...reasons].some((reason) => reason !== 'event');
}

/** A periodic check (with events, maybe), nothing that must read everything. */
function onlyPeriodic(reasons: ReadonlySet<SyncReason>): boolean {
  return reasons.has('periodic') && [...reasons].every((r) => r === 'periodic' || r === 'event');
}

const EVENT: ReadonlySet<SyncReason> = new Set(['event']);

/** Events merged with a kernel check (the watch, the periodic check), nothing that reads all anew. */
function eventWithCheck(reasons: ReadonlySet<SyncReason>): boolean {
  return reasons.has('event') && engineKnown(reasons);
}

/** Nothing that says the engine's side may be unknown (startup, reconnect, a failed sync). */
function engineKnown(reasons: ReadonlySet<SyncReason>): boolean {
  return [...reasons].every((r) => r === 'periodic' || r === 'event' || r === 'watch');
}

/**
 * How a sync reads the engine: `full` alone lists and inspects everything;
 * `full` and `listed`, the list and what it shows changed (readChanged); else
 * what events named (nothing, when none came). A periodic check or a watch
 * sync, while the cache vouches for itself, needs no list until enough events
 * came that the engine may have dropped one (`listDue`); every
 * DEEP_CHECK_EVERY-th check reads everything.
 */
function engineRead(
  reasons: ReadonlySet<SyncReason>,
  deepDue: boolean,
  listDue: boolean,
): { readonly full: boolean; readonly listed: boolean } {
  if (!needsFullRead(reasons)) return { full: false, listed: false };
  if (!engineKnown(reasons) || deepDue) return { full: true, listed: false };
  return { full: listDue, listed: listDue };
}

/**
 * Every this many periodic checks, one reads everything (every container
 * inspected, every element of dockfw's sets listed), whatever the lighter ones found.
 */
export const DEEP_CHECK_EVERY = 10;

const SHOWN_RULES = 20;

export type SyncFn = (reasons: ReadonlySet<SyncReason>) => Promise<void>;

export function createSync(options: SyncOptions): SyncFn {
  const { logger } = options;
  let reportedProblems = new Set<string>();

  /** One line per label problem when it appears, not on every sync. */
  function reportLabelErrors(desired: DesiredState): void {
    const current = new Set<string>();
    for (const error of desired.errors) {
      const line = formatLabelError(error);
      current.add(line);
      if (!reportedProblems.has(line)) {
        logger.warn(
          { container: error.container, label: error.label, problem: error.message },
          'invalid dockfw label: container closed',
        );
      }
    }
    // Lookalike keys are ignored, so the port stays as the other labels say: say so once.
    for (const warning of desired.warnings ?? []) {
      const line = formatLabelWarning(warning);
      current.add(line);
      if (!reportedProblems.has(line)) {
        logger.warn(
          { container: warning.container, label: warning.label, problem: warning.message },
          'label looks like a dockfw label but is not: ignored',
        );
      }
    }
    reportedProblems = current;
  }

  function reportFamily(report: FamilyReport, reasons: ReadonlySet<SyncReason>): void {
    const { family, placement, drift } = report;
    const fields = {
      family: `ipv${family}`,
      firewall: describePlacement(placement),
      added: drift.missing.length,
      removed: drift.unexpected.length,
      reasons: [...reasons],
    };
    if (report.removedFrom !== undefined) {
      logger.warn(
        {
          family: fields.family,
          removedFrom: report.removedFrom,
          dockerUses: placement.kind === 'iptables' ? placement.variant : placement.kind,
        },
        'removed dockfw rules left in the iptables variant Docker no longer uses',
      );
    }
    if (!report.written) {
      logger.debug(fields, 'firewall in sync');
      return;
    }
    const detail = {
      ...fields,
      missing: drift.missing.slice(0, SHOWN_RULES),
      unexpected: drift.unexpected.slice(0, SHOWN_RULES),
      structural: drift.structural,
      jumpFixed: drift.structural.includes(JUMP_WRONG),
      reordered: drift.reordered,
      // Someone else's change put back along with Docker's (told apart by the backend).
      ...(report.repaired === true ? { repaired: true } : {}),
    };
    // Nothing changed on Docker's side, yet the kernel differed: someone else
    // changed or flushed dockfw's rules.
    if (report.desiredChanged === false) {
      logger.warn(detail, 'drift found: re-applied the rules');
      options.observer?.driftRepaired?.(report);
    } else logger.info(detail, 'rules applied');
    if (report.desiredChanged === false || report.repaired === true) options.onRepair?.(reasons);
  }

  /** Containers whose inspect could not be read, already logged (once each while it lasts). */
  let reportedUnreadable: ReadonlyMap<string, unknown> = new Map();
  const cache = options.cache ?? new ContainerCache(options.docker);

  /** Periodic checks since the last sync that read everything. */
  let lightChecks = 0;
  /** What the last finished sync asked of the firewall, and from what; undefined after a failed one. */
  let last: { readonly snapshot: EngineSnapshot; readonly desired: DesiredState } | undefined;

  async function readEngine(
    reasons: ReadonlySet<SyncReason>,
    how: { readonly full: boolean; readonly listed: boolean },
  ): Promise<CacheRead> {
    const read = await cache.read(how).catch((error: unknown) => {
      throw new DockerUnavailableError(error);
    });
    for (const [id, error] of read.unreadable) {
      if (reportedUnreadable.has(id)) continue;
      logger.error(
        { container: id, error: error instanceof Error ? error.message : String(error) },
        'cannot read container: left closed',
      );
    }
    reportedUnreadable = read.unreadable;
    logger.debug(
      { full: read.full, listed: read.listed === true, inspected: read.inspected, reasons: [...reasons] },
      'containers read',
    );
    return read;
  }

  /** The firewall's light periodic read, told whether the ruleset watch follows the kernel now. */
  function periodicCheck(): { readonly periodic: { readonly watched: boolean } } {
    return { periodic: { watched: options.kernelWatched?.() === true } };
  }

  function applied(
    desired: DesiredState,
    reports: readonly FamilyReport[],
    reasons: ReadonlySet<SyncReason>,
  ): void {
    for (const report of reports) reportFamily(report, reasons);
    options.observer?.syncApplied?.(desired, reports, reasons);
  }

  /**
   * The light periodic check: the kernel against what the last sync asked, side
   * by side with the engine's read (neither waits for the other; the list only
   * when due); then, only when the engine changed (a lost event), that change is
   * written as after an event. Meanwhile the kernel holds what it held before.
   */
  async function lightCheck(
    reasons: ReadonlySet<SyncReason>,
    before: NonNullable<typeof last>,
  ): Promise<CacheRead> {
    const [kernel, engine] = await Promise.allSettled([
      options.firewall.reconcile(before.desired, periodicCheck()),
      readEngine(reasons, engineRead(reasons, false, cache.listDue)),
    ]);
    if (kernel.status === 'rejected') throw asError(kernel.reason);
    applied(before.desired, kernel.value, reasons);
    if (engine.status === 'rejected') throw asError(engine.reason);
    const { snapshot } = engine.value;
    if (sameSnapshot(snapshot, before.snapshot)) {
      last = before;
      return engine.value;
    }
    const desired = desiredState(snapshot, options.config);
    reportLabelErrors(desired);
    applied(desired, await options.firewall.reconcile(desired, { trustLastSync: true }), reasons);
    last = { snapshot, desired };
    return engine.value;
  }

  return async (reasons) => {
    try {
      await syncOnce(reasons);
    } finally {
      // The reports are out (a repair is told at once); then what follows the writes. Also
      // after a failed sync: a write before the failure (a narrowing, a repair) is in the kernel.
      await options.firewall
        .afterReported?.()
        .catch((error: unknown) =>
          logger.error(
            { error: asError(error).message },
            'after the sync: cutting revoked connections failed, tried again after the next sync',
          ),
        );
    }
  };

  async function syncOnce(reasons: ReadonlySet<SyncReason>): Promise<void> {
    const before = last;
    last = undefined;
    const due = lightChecks >= DEEP_CHECK_EVERY - 1;
    // The kernel by what shows dockfw's objects intact, the engine as the cache knows it
    // (both while the cache vouches for itself). A watch sync reads the kernel whole.
    const light = onlyPeriodic(reasons) && !due;
    let read: CacheRead;
    // With an event besides, the kernel is not first held to the state the event changes.
    if (light && before !== undefined && reasons.size === 1) read = await lightCheck(reasons, before);
    else {
      read = await readEngine(reasons, engineRead(reasons, due, cache.listDue));
      const { snapshot } = read;
      const desired = desiredState(snapshot, options.config);
      reportLabelErrors(desired);
      // Container events alone cannot have changed the kernel behind dockfw's back.
      const trustLastSync = [...reasons].every((reason) => reason === 'event');
      if (!trustLastSync && before !== undefined && eventWithCheck(reasons)) {
        // The events' change first, as after events alone, so a check merged in (Docker's
        // own writes wake the watch on every start) does not hold a new container's rules
        // back; the check follows and repairs whatever else it finds.
        applied(desired, await options.firewall.reconcile(desired, { trustLastSync: true }), EVENT);
      }
      const periodic = light ? periodicCheck() : {};
      applied(desired, await options.firewall.reconcile(desired, { trustLastSync, ...periodic }), reasons);
      last = { snapshot, desired };
    }
    // Counted once the sync went through (a failed check is followed by a full retry anyway),
    // a periodic check merged with a watch too: the deep check is never put off. Only a sync
    // that read both sides whole starts the count again.
    if (read.full && !light) lightChecks = 0;
    else if (reasons.has('periodic')) lightChecks++;
  }
}

/** The same containers (the cache keeps an unchanged container's object) and the same bridges. */
function sameSnapshot(a: EngineSnapshot, b: EngineSnapshot): boolean {
  return (
    a.containers.length === b.containers.length &&
    a.containers.every((container, i) => container === b.containers[i]) &&
    a.bridges.length === b.bridges.length &&
    a.bridges.every((bridge, i) => bridge === b.bridges[i])
  );
}
