// The one port between dockfw and a firewall backend. The runtime, the CLI and
// the observers see only this: where the rules live (a placement), what differed
// (a drift), what a sync did (a family report), what a backend would write. Which
// backend is behind it is told by `placement.kind`, never by the text of a name.
import type { Family } from '../docker/snapshot.js';
import type { DesiredState } from '../policy/desired.js';

export type BackendName = 'iptables' | 'nftables';

/** Which iptables tools hold Docker's rules: iptables-nft or iptables-legacy. */
export type IptablesVariant = 'nft' | 'legacy';

/** Where one family's rules live. */
export type Placement =
  | {
      readonly kind: 'iptables';
      readonly variant: IptablesVariant;
      /** The chain holding dockfw's jump: DOCKER-USER, or FORWARD (ip6tables on engines without an IPv6 DOCKER-USER). */
      readonly parent: string;
    }
  | {
      readonly kind: 'nftables';
      /** dockfw's own table, as nft spells it (`inet dockfw`). */
      readonly table: string;
    };

/** `iptables-nft (DOCKER-USER)`, `nftables (table inet dockfw)`. */
export function describePlacement(placement: Placement): string {
  switch (placement.kind) {
    case 'iptables':
      return `iptables-${placement.variant} (${placement.parent})`;
    case 'nftables':
      return `nftables (table ${placement.table})`;
  }
}

/** What the kernel held that the desired rules did not, and the reverse. */
export interface Drift {
  /** Rules or set elements the backend would write and the kernel lacks. */
  readonly missing: readonly string[];
  /** Rules or set elements in dockfw's place that it would not write. */
  readonly unexpected: readonly string[];
  /** Same rules, another order (order decides the verdict). */
  readonly reordered: boolean;
  /** Shape problems: missing chains, a wrong jump, a table or set declared otherwise. */
  readonly structural: readonly string[];
}

/** The structural entry of a way into dockfw's rules (the iptables jump) that is absent, doubled or not first. */
export const JUMP_WRONG = 'jump to dockfw absent, doubled or not first';

export const NO_DRIFT: Drift = { missing: [], unexpected: [], reordered: false, structural: [] };

export function hasDrift(drift: Drift): boolean {
  return (
    drift.missing.length > 0 || drift.unexpected.length > 0 || drift.reordered || drift.structural.length > 0
  );
}

/** One family's outcome of a sync. */
export interface FamilyReport {
  readonly family: Family;
  readonly placement: Placement;
  readonly drift: Drift;
  /** The backend wrote this sync (the kernel differed). */
  readonly written: boolean;
  /**
   * The family's desired content differs from the previous sync's: a write is
   * then expected. A write without it means someone else changed the kernel
   * (drift). Absent: treated as changed.
   */
  readonly desiredChanged?: boolean;
  /**
   * The write also put back something someone else had changed, whatever else it
   * carried (a container's change in the same write, a refused element write
   * that made the backend write everything). What was off let anything in meanwhile.
   */
  readonly repaired?: boolean;
  /**
   * dockfw's rules were found and removed in the other iptables variant
   * (left from when Docker used it; both variants filter every packet).
   */
  readonly removedFrom?: IptablesVariant;
}

/** A backend's tool refused a payload; nothing of it applied. */
export class FirewallApplyError extends Error {
  override readonly name = 'FirewallApplyError';
  constructor(
    message: string,
    readonly backend: BackendName,
    /** The family written; undefined where one write serves both (the nftables table). */
    readonly family: Family | undefined,
    /** The payload line the tool rejected, when it said which. */
    readonly offendingLine: string | undefined,
    /** iptables only: the tools that refused it. */
    readonly variant?: IptablesVariant,
  ) {
    super(message);
  }
}

/**
 * The line number a tool blames: nft `/dev/stdin:LINE:COLUMNS: Error: …`,
 * iptables-legacy `line N failed`, iptables-nft `Error occurred at line: N`.
 */
export function failedLineNumber(stderr: string): number | undefined {
  const match = /\/dev\/stdin:(\d+):/.exec(stderr) ?? /line:? (\d+)(?: failed)?/i.exec(stderr);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** The payload line a tool's stderr blames, with its number. */
export function blamedLine(
  payload: string,
  stderr: string,
): { readonly number: number; readonly line: string } | undefined {
  const number = failedLineNumber(stderr);
  const line = number === undefined ? undefined : payload.split('\n')[number - 1];
  return number === undefined || line === undefined ? undefined : { number, line };
}

/** The engine's own firewall chains are not there yet (engine starting): try again later. */
export class DockerChainsMissingError extends Error {
  override readonly name = 'DockerChainsMissingError';
}

export interface ReconcileOptions {
  /**
   * Only container events happened since the last sync: the kernel may be taken
   * to hold what that sync left, so a backend may write the difference without
   * reading back. Outside changes are the ruleset watch's and the periodic
   * check's to find (their syncs never set this). A backend may ignore it.
   */
  readonly trustLastSync?: boolean;
  /**
   * A periodic check: the backend may read only what shows whether dockfw's own
   * objects are there and of the size asked (not every element), and take the
   * rest as the last sync left it. `watched`: the ruleset watch follows every
   * commit to nf_tables (a change inside dockfw's table gets a sync of its own).
   * Every few checks the sync asks for the whole read instead.
   */
  readonly periodic?: { readonly watched: boolean };
}

/** What a sync needs of the firewall: bring the kernel in step with `desired`. */
export interface FirewallSync {
  reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<readonly FamilyReport[]>;
  /**
   * What follows a sync once its reports are out (cutting the connections its
   * rules now refuse), so a repair is told before that work. A sync that failed
   * does not call it; the next one does.
   */
  afterReported?(): Promise<void>;
}

export interface Traffic {
  readonly packets: number;
  readonly bytes: number;
}

export const NO_TRAFFIC: Traffic = { packets: 0, bytes: 0 };

export function addTraffic(a: Traffic, b: Traffic): Traffic {
  return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes };
}

/** What one family's rules counted, where the backend counts per container. */
export interface FamilyCounters {
  /** Dropped traffic by the 12-digit container id of the rule that dropped it. */
  readonly drops: ReadonlyMap<string, Traffic>;
  readonly catchAll: Traffic;
  /** Rules dockfw owns in this family. */
  readonly rules: number;
}

export interface RenderOptions {
  readonly families: readonly Family[];
  /** Size of the drop records; 0: drops are not recorded. */
  readonly dropRecords: number;
  /** iptables: the `ipset restore` batches that fill the verdict sets, instead of the rules. */
  readonly sets?: boolean;
  /** Established packets skip the lookups, as `dockfw run` writes it where conntrack works. */
  readonly fastPath?: boolean;
}

/** What `dockfw guard` did, or would do, at one place. */
export type GuardPlan =
  | { readonly kind: 'install'; readonly payload: string }
  /** dockfw's rules are there already (guard run twice, or dockfw running): leave them alone. */
  | { readonly kind: 'already-guarded'; readonly holding: readonly string[] };

export interface GuardOutcome {
  /** Where: `iptables-nft`, `ip6tables-legacy`, `nftables table inet dockfw`. */
  readonly where: string;
  /** Undefined where the tool is not installed (nothing there to guard). */
  readonly plan: GuardPlan | undefined;
}

export interface Removal {
  /** Where: `iptables-nft`, `nftables table inet dockfw`. */
  readonly where: string;
  /** What was removed there (chains; the table). */
  readonly removed: readonly string[];
  /** The same as one line for people. */
  readonly text: string;
}

/** A backend, whole: what `dockfw run`, `plan`, `guard`, `uninstall` and the metrics use. */
export interface Firewall extends FirewallSync {
  readonly name: BackendName;
  /** The payload a first sync would apply for `desired` (what `dockfw plan` prints). */
  render(desired: DesiredState, options: RenderOptions): string;
  /** Installs the fail-closed layout of an engine with no containers, only where dockfw has no rules yet. */
  guard(empty: DesiredState): Promise<readonly GuardOutcome[]>;
  /** Removes everything this backend owns, and nothing else. */
  uninstall(): Promise<readonly Removal[]>;
  /** One family's per-container counters; undefined where this backend keeps none. */
  counters(family: Family, placement: Placement): Promise<FamilyCounters | undefined>;
}
