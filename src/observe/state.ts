// The daemon's state as the outside sees it: fed by the runtime's hooks, read
// by /status, /readyz and the metrics. Pure bookkeeping, no I/O.
import type { BackendName, FamilyReport, Placement } from '../backends/firewall.js';
import type { Config } from '../config/config.js';
import type { Family } from '../docker/snapshot.js';
import type { ContainerSummary, DesiredState, LabelError } from '../policy/desired.js';
import type { DaemonObserver } from './observer.js';

export interface SyncOutcome {
  readonly ok: boolean;
  /** ISO 8601 time the sync ended. */
  readonly at: string;
  readonly durationMs: number;
  readonly error?: string;
}

/** Where one family's rules live, as /status tells it: the family and its placement's fields. */
export type FamilyPlacement = { readonly family: Family } & Placement;

/** The body of GET /status (and what `dockfw status --json` prints). */
export interface StatusReport {
  readonly version: string;
  readonly ready: boolean;
  /** Why not ready; empty when ready. */
  readonly notReady: readonly string[];
  readonly defaultPolicy: Config['defaultPolicy'];
  readonly docker: { readonly connected: boolean };
  readonly lastSync: SyncOutcome | null;
  readonly lastSuccessfulSync: string | null;
  readonly firewall: readonly FamilyPlacement[];
  /** Containers with published ports, as of the last sync that reached the firewall. */
  readonly containers: readonly ContainerSummary[];
  readonly labelErrors: readonly LabelError[];
  /** Label keys that look like dockfw's but are not (absent from older daemons). */
  readonly labelWarnings?: readonly LabelError[];
}

export interface DaemonStateOptions {
  readonly version: string;
  readonly defaultPolicy: Config['defaultPolicy'];
  /** Wall-clock milliseconds since the epoch (injectable for tests). */
  readonly now?: () => number;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class DaemonState implements DaemonObserver {
  private connected = false;
  private lastSync: SyncOutcome | null = null;
  private lastSuccessMs: number | null = null;
  private desired: DesiredState | null = null;
  private placements: FamilyPlacement[] = [];
  private readonly writes = new Map<Family, number>();
  private readonly now: () => number;

  constructor(private readonly options: DaemonStateOptions) {
    this.now = options.now ?? Date.now;
  }

  syncApplied(desired: DesiredState, reports: readonly FamilyReport[]): void {
    this.desired = desired;
    this.placements = reports.map(({ family, placement }) => ({ family, ...placement }));
    for (const report of reports) {
      if (report.written) this.writes.set(report.family, (this.writes.get(report.family) ?? 0) + 1);
    }
  }

  syncFinished(durationMs: number, error?: unknown): void {
    const at = this.now();
    this.lastSync = {
      ok: error === undefined,
      at: new Date(at).toISOString(),
      durationMs: Math.round(durationMs),
      ...(error === undefined ? {} : { error: errorText(error) }),
    };
    if (error === undefined) this.lastSuccessMs = at;
  }

  dockerConnected(): void {
    this.connected = true;
  }

  dockerDisconnected(): void {
    this.connected = false;
  }

  /** Reasons the daemon is not ready; empty when it is. */
  notReady(): string[] {
    const reasons: string[] = [];
    if (!this.connected) reasons.push('docker event stream not connected');
    if (this.lastSync === null) reasons.push('first sync not done yet');
    else if (!this.lastSync.ok) reasons.push(`last sync failed: ${this.lastSync.error ?? 'unknown error'}`);
    return reasons;
  }

  /** Epoch seconds of the last successful sync. */
  get lastSuccessSeconds(): number | null {
    return this.lastSuccessMs === null ? null : this.lastSuccessMs / 1000;
  }

  get containers(): readonly ContainerSummary[] {
    return this.desired?.containers ?? [];
  }

  get families(): readonly FamilyPlacement[] {
    return this.placements;
  }

  /** What the last sync that reached the firewall enforced (null before the first). */
  get lastDesired(): DesiredState | null {
    return this.desired;
  }

  /** The backend the last sync wrote with, from where its rules live. */
  get backend(): BackendName | undefined {
    return this.placements[0]?.kind;
  }

  /** How many times dockfw rewrote this family's chains (each rewrite resets their counters). */
  writeCount(family: Family): number {
    return this.writes.get(family) ?? 0;
  }

  report(): StatusReport {
    const notReady = this.notReady();
    return {
      version: this.options.version,
      ready: notReady.length === 0,
      notReady,
      defaultPolicy: this.options.defaultPolicy,
      docker: { connected: this.connected },
      lastSync: this.lastSync,
      lastSuccessfulSync: this.lastSuccessMs === null ? null : new Date(this.lastSuccessMs).toISOString(),
      firewall: this.placements,
      containers: this.containers,
      labelErrors: this.desired?.errors ?? [],
      labelWarnings: this.desired?.warnings ?? [],
    };
  }
}
