// Cutting revoked connections (as kube-proxy does): after a sync whose desired
// state narrowed anything, after one that repaired rules someone else changed
// (connections may have come in while they were gone), and after the first sync
// of the process, delete the conntrack entries of every connection the new rules
// would not admit. Their next packet then starts a new entry, which the rules
// judge (and drop). Without this, an established connection would outlive the
// label that let it in wherever established packets skip the lookups (the
// nftables fast path). The cut follows the sync's reports (afterReported): on a
// busy host listing the connections takes a while, and a repair is told first.
import type { Logger } from 'pino';
import type { ConnectionTable } from './conntrack.js';
import type { FamilyReport, FirewallSync, ReconcileOptions } from './firewall.js';
import type { Family } from '../net/family.js';
import { formatAddress } from '../net/ip.js';
import type { DesiredState } from '../policy/desired.js';
import { hostView, judgeFlow, narrowed, type Flow, type HostInterface } from '../policy/judge-flow.js';

export interface RevokingFirewallOptions {
  readonly firewall: FirewallSync;
  readonly connections: ConnectionTable;
  /** The host's interface addresses, read at each cut. */
  readonly interfaces: () => readonly HostInterface[];
  readonly logger: Logger;
  /** Told after each cut (tests, metrics). */
  readonly onCut?: (result: CutResult) => void;
}

export interface CutResult {
  readonly listed: number;
  readonly cut: number;
  readonly failed: number;
}

const FAMILIES: readonly Family[] = [4, 6];

function describe(flow: Flow): string {
  const address = (value: bigint): string =>
    flow.family === 6 ? `[${formatAddress(6, value)}]` : formatAddress(4, value);
  return `${address(flow.source)}:${flow.sourcePort} → ${address(flow.destination)}:${flow.destinationPort}/${flow.protocol}`;
}

/**
 * The family's rules were rewritten though nothing dockfw asked for changed, or
 * its objects' shape was broken (a chain, set or table gone, the jump moved), or
 * the backend says the write put back someone else's change besides a container's:
 * while they were off anything got in.
 */
function repaired(report: FamilyReport): boolean {
  return (
    report.repaired === true ||
    (report.written && (report.desiredChanged === false || report.drift.structural.length > 0))
  );
}

export class RevokingFirewall implements FirewallSync {
  private previous: DesiredState | undefined;
  /** Set at start (flows from before, or from while dockfw was down) and until a cut succeeds. */
  private pending = true;

  constructor(private readonly options: RevokingFirewallOptions) {}

  async reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<readonly FamilyReport[]> {
    const reports = await this.options.firewall.reconcile(desired, options);
    if (this.previous !== undefined && narrowed(this.previous, desired)) this.pending = true;
    if (reports.some(repaired)) this.pending = true;
    this.previous = desired;
    return reports;
  }

  /** The rules are in place: a failing cut is logged and retried after the next sync, never fails this one. */
  async afterReported(): Promise<void> {
    if (this.pending && this.previous !== undefined) this.pending = !(await this.cut(this.previous));
  }

  /** Resolves true when every refused connection is gone. */
  private async cut(desired: DesiredState): Promise<boolean> {
    const { connections, logger } = this.options;
    const host = hostView(this.options.interfaces(), desired);
    let listed = 0;
    let cut = 0;
    let failed = 0;
    for (const family of FAMILIES) {
      let flows: Flow[];
      try {
        flows = await connections.list(family);
      } catch (error) {
        failed++;
        logger.error(
          { family: `ipv${family}`, error: error instanceof Error ? error.message : String(error) },
          'cannot list tracked connections: revoked ones not cut, retried next sync',
        );
        continue;
      }
      listed += flows.length;
      for (const flow of flows) {
        const refusal = judgeFlow(desired, host, flow);
        if (refusal === undefined) continue;
        const fields = {
          container: refusal.containerName ?? 'none',
          target: refusal.target,
          connection: describe(flow),
        };
        try {
          if (await connections.delete(flow)) {
            cut++;
            logger.info(fields, 'revoked connection cut');
          }
        } catch (error) {
          failed++;
          logger.error(
            { ...fields, error: error instanceof Error ? error.message : String(error) },
            'cannot cut a revoked connection: retried next sync',
          );
        }
      }
    }
    this.options.onCut?.({ listed, cut, failed });
    return failed === 0;
  }
}
