// What the daemon tells the outside world about itself: the runtime calls these
// hooks, src/observe turns them into /status, /readyz and metrics. Every hook is
// optional so the runtime never depends on observability being on.
import type { FamilyReport } from '../backends/firewall.js';
import type { DesiredState } from '../policy/desired.js';
import type { SyncReason } from '../runtime/runner.js';

export interface DaemonObserver {
  /** A sync wrote (or confirmed) the firewall for this desired state. */
  syncApplied?(
    desired: DesiredState,
    reports: readonly FamilyReport[],
    reasons: ReadonlySet<SyncReason>,
  ): void;
  /** A periodic check found the rules changed behind dockfw's back and re-applied them. */
  driftRepaired?(report: FamilyReport): void;
  /** A sync ended; `error` is undefined on success. */
  syncFinished?(durationMs: number, error?: unknown): void;
  /** The Docker event stream connected (`first` is false for a reconnect) or dropped. */
  dockerConnected?(first: boolean): void;
  dockerDisconnected?(error: unknown): void;
}
