// One sync for the iptables backend: per family, find where Docker's rules
// live, read the filter table, render, and write one transaction only when the
// kernel differs from the render.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import { applyPayload } from './apply.js';
import { CHAIN_ENTRY, CHAIN_PRE, PREROUTING } from './chains.js';
import { CommandError, type CommandRunner } from './command.js';
import { detectIpv4, detectIpv6, procLegacyTableNames, type DetectDeps, type Placement } from './detect.js';
import { diffOwned, hasDrift, mergeDrift, type Drift } from './drift.js';
import { jumpPositions, readFilterTable, type Variant } from './read.js';
import { renderPreroutingPayload, renderSyncPayload } from './render.js';
import { uninstallVariant } from './uninstall.js';

export interface FamilyReport {
  readonly family: Family;
  readonly variant: Variant;
  readonly parent: string;
  readonly drift: Drift;
  readonly written: boolean;
  /**
   * The owned chains' desired content differs from the previous sync's: a
   * write is then expected. A write without it means someone else changed
   * the kernel (drift). Absent: treated as changed.
   */
  readonly desiredChanged?: boolean;
  /**
   * dockfw's chains were found and removed in the other iptables variant
   * (left from when Docker used it; both variants filter every packet).
   */
  readonly removedFrom?: Variant;
}

/** The part of a payload that describes the owned chains (not the jump repair). */
function ownedPart(payload: string): string {
  return payload
    .split('\n')
    .filter((line) => line.startsWith(':') || line.startsWith('-A '))
    .join('\n');
}

/** Docker has not created its chains yet (engine starting); try again later. */
export class DockerChainsMissingError extends Error {
  override readonly name = 'DockerChainsMissingError';
}

export interface IptablesReconcilerOptions {
  readonly run: CommandRunner;
  readonly legacyTableNames?: DetectDeps['legacyTableNames'];
  /** Called once when ip6tables is not installed; IPv6 is then skipped. */
  readonly onIpv6Unavailable?: (error: CommandError) => void;
}

export class IptablesReconciler {
  private readonly deps: DetectDeps;
  private ipv6Unavailable = false;
  private readonly lastDesired = new Map<Family, string>();

  constructor(private readonly options: IptablesReconcilerOptions) {
    this.deps = { run: options.run, legacyTableNames: options.legacyTableNames ?? procLegacyTableNames };
  }

  /** IPv6's placement; undefined once ip6tables turned out not to be installed. */
  private async ipv6Placement(ipv4Variant: Variant): Promise<Placement | undefined> {
    if (this.ipv6Unavailable) return undefined;
    try {
      return await detectIpv6(this.deps, ipv4Variant);
    } catch (error) {
      if (!(error instanceof CommandError && error.missing)) throw error;
      this.ipv6Unavailable = true;
      this.options.onIpv6Unavailable?.(error);
      return undefined;
    }
  }

  /** Throws DockerChainsMissingError before Docker made its chains. */
  async reconcile(desired: DesiredState): Promise<FamilyReport[]> {
    const ipv4 = await detectIpv4(this.deps);
    if (!ipv4) {
      throw new DockerChainsMissingError("Docker's chains are not in iptables-nft nor iptables-legacy yet");
    }
    // Separate tables, separate transactions: read and write both families side by side.
    const [v4, v6] = await Promise.all([
      this.reconcileFamily(desired, ipv4),
      this.ipv6Placement(ipv4.variant).then(
        (placement) => placement && this.reconcileFamily(desired, placement),
      ),
    ]);
    return v6 ? [v4, v6] : [v4];
  }

  private async reconcileFamily(desired: DesiredState, placement: Placement): Promise<FamilyReport> {
    const { family, variant, parent, table } = placement;
    const mangle = await readFilterTable(this.options.run, family, variant, 'mangle');
    const prePositions = jumpPositions(mangle, PREROUTING, CHAIN_PRE);
    const prePayload = renderPreroutingPayload(desired, family, {
      parent: PREROUTING,
      positions: prePositions,
    });
    const positions = jumpPositions(table, parent, CHAIN_ENTRY);
    const filterPayload = renderSyncPayload(desired, family, { parent, positions });
    const drift = mergeDrift(
      diffOwned(mangle, prePayload, prePositions, 'mangle'),
      diffOwned(table, filterPayload, positions),
    );
    const written = hasDrift(drift);
    // mangle first: it is the binding's judge, and filter's catch-all keeps unseen containers closed meanwhile.
    const payload = prePayload + filterPayload;
    const owned = ownedPart(payload);
    const desiredChanged = this.lastDesired.get(family) !== owned;
    if (written) await applyPayload(this.options.run, family, variant, payload);
    this.lastDesired.set(family, owned);
    const removedFrom = await this.removeLeftovers(placement);
    return {
      family,
      variant,
      parent,
      drift,
      written,
      desiredChanged,
      ...(removedFrom ? { removedFrom } : {}),
    };
  }

  /** Old dockfw rules in the variant Docker no longer uses would still judge every packet: remove them. */
  private async removeLeftovers(placement: Placement): Promise<Variant | undefined> {
    const { other, family } = placement;
    if (!other) return undefined;
    const removed = await uninstallVariant(this.options.run, family, other.variant, other.table);
    return removed.removed ? other.variant : undefined;
  }
}
