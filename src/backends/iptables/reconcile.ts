// One sync for the iptables backend: per family, find where Docker's rules
// live, read the filter table, render, and write one transaction only when the
// kernel differs from the render.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import { applyPayload } from './apply.js';
import { CHAIN_ENTRY, CHAIN_PRE, PREROUTING } from './chains.js';
import { CommandError, type CommandRunner } from '../command.js';
import { DesiredMemo } from '../desired-memo.js';
import { DockerChainsMissingError, JUMP_WRONG, type Drift, type FamilyReport } from '../firewall.js';
import { detectIpv4, detectIpv6, procLegacyTableNames, type DetectDeps, type Placement } from './detect.js';
import { diffOwned, hasDrift, mergeDrift, type Drift as IptablesDrift } from './drift.js';
import { jumpPositions, readFilterTable, type Variant } from './read.js';
import { ensureRecordSet } from './records.js';
import { renderPreroutingPayload, renderSyncPayload } from './render.js';
import { DEFAULT_DROP_RECORDS } from '../../drops/record.js';
import { uninstallVariant } from './uninstall.js';

/** The part of a payload that describes the owned chains (not the jump repair). */
function ownedPart(payload: string): string {
  return payload
    .split('\n')
    .filter((line) => line.startsWith(':') || line.startsWith('-A '))
    .join('\n');
}

export interface IptablesReconcilerOptions {
  readonly run: CommandRunner;
  readonly legacyTableNames?: DetectDeps['legacyTableNames'];
  /** Called once when ip6tables is not installed; IPv6 is then skipped. */
  readonly onIpv6Unavailable?: (error: CommandError) => void;
  /** Size of each family's drop record ipset; 0: drops are not recorded. */
  readonly dropRecords?: number;
  /** Called when drops cannot be recorded (no ipset: once; else at each failing sync); they are still dropped. */
  readonly onRecordsUnavailable?: (error: CommandError) => void;
}

export { DockerChainsMissingError };

/** The iptables drift in the shape every backend reports. */
function neutralDrift(drift: IptablesDrift): Drift {
  return {
    missing: drift.missing,
    unexpected: drift.unexpected,
    reordered: drift.reordered,
    structural: [
      ...drift.chainsMissing.map((chain) => `chain ${chain}`),
      ...(drift.jumpWrong ? [JUMP_WRONG] : []),
    ],
  };
}

export class IptablesReconciler {
  private readonly deps: DetectDeps;
  private ipv6Unavailable = false;
  private readonly lastDesired = new DesiredMemo();
  /** Families whose record ipset is known to exist. */
  private readonly recordSets = new Set<Family>();
  private noIpset = false;
  /** The variant Docker's rules were last found in, per family. */
  private readonly lastVariant = new Map<Family, Variant>();

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
      // Docker's chains are gone (an `nft flush ruleset`, an engine starting): its DNAT
      // with them, but docker-proxy may still listen on the published ports. The
      // bindings do not depend on Docker's chains: put them back where they were.
      await this.restoreBindings(desired);
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

  /** The mangle part alone, in the variant each family last had: what judges docker-proxy's path. */
  private async restoreBindings(desired: DesiredState): Promise<void> {
    for (const [family, variant] of this.lastVariant) {
      const records = { records: await this.recording(family) };
      const mangle = await readFilterTable(this.options.run, family, variant, 'mangle');
      const positions = jumpPositions(mangle, PREROUTING, CHAIN_PRE);
      const payload = renderPreroutingPayload(desired, family, { parent: PREROUTING, positions }, records);
      if (hasDrift(diffOwned(mangle, payload, positions, 'mangle')))
        await applyPayload(this.options.run, family, variant, payload);
    }
  }

  /** Whether this family's DOCKFW-DROP can note drops: its ipset exists (made now if not). */
  private async recording(family: Family): Promise<boolean> {
    const size = this.options.dropRecords ?? DEFAULT_DROP_RECORDS;
    if (size === 0 || this.noIpset) return false;
    if (this.recordSets.has(family)) return true;
    const { state, error } = await ensureRecordSet(this.options.run, family, size);
    if (state === 'ready') this.recordSets.add(family);
    if (state === 'no-ipset') this.noIpset = true;
    if (error !== undefined) this.options.onRecordsUnavailable?.(error);
    return state === 'ready';
  }

  private async reconcileFamily(desired: DesiredState, placement: Placement): Promise<FamilyReport> {
    const { family, variant, parent, table } = placement;
    const records = { records: await this.recording(family) };
    const mangle = await readFilterTable(this.options.run, family, variant, 'mangle');
    const prePositions = jumpPositions(mangle, PREROUTING, CHAIN_PRE);
    const prePayload = renderPreroutingPayload(
      desired,
      family,
      { parent: PREROUTING, positions: prePositions },
      records,
    );
    const positions = jumpPositions(table, parent, CHAIN_ENTRY);
    const filterPayload = renderSyncPayload(desired, family, { parent, positions }, records);
    const drift = mergeDrift(
      diffOwned(mangle, prePayload, prePositions, 'mangle'),
      diffOwned(table, filterPayload, positions),
    );
    const written = hasDrift(drift);
    // mangle first: it is the binding's judge, and filter's catch-all keeps unseen containers closed meanwhile.
    const payload = prePayload + filterPayload;
    const owned = ownedPart(payload);
    const desiredChanged = this.lastDesired.changed(family, owned);
    if (written) {
      try {
        await applyPayload(this.options.run, family, variant, payload);
      } catch (error) {
        // Perhaps someone destroyed the record set: make sure of it again next time.
        this.recordSets.delete(family);
        throw error;
      }
    }
    this.lastDesired.remember(family, owned);
    this.lastVariant.set(family, variant);
    const removedFrom = await this.removeLeftovers(placement);
    return {
      family,
      placement: { kind: 'iptables', variant, parent },
      drift: neutralDrift(drift),
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
