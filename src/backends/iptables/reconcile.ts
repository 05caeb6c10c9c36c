// One sync for the iptables backend: per family, find where Docker's rules
// live, read dockfw's chains (mangle and filter) and its verdict ipsets,
// and write only what differs: just the set elements that changed (one
// `ipset restore` batch), or the sets swapped in whole and the chains in one
// `iptables-restore` transaction. Nothing when the kernel already matches.
import type { Family } from '../../docker/snapshot.js';
import type { DesiredState } from '../../policy/desired.js';
import { applyPayload } from './apply.js';
import { CHAIN_ENTRY, CHAIN_PRE, PREROUTING } from './chains.js';
import { CommandError, type CommandRunner } from '../command.js';
import {
  DockerChainsMissingError,
  JUMP_WRONG,
  type Drift,
  type FamilyReport,
  type ReconcileOptions,
} from '../firewall.js';
import { settleAll } from '../../settle.js';
import { detectIpv4, detectIpv6, procLegacyTableNames, type DetectDeps, type Placement } from './detect.js';
import { diffOwned, hasDrift, mergeDrift, type Drift as IptablesDrift } from './drift.js';
import { jumpPositions, readFilterTable, type FilterTable, type Variant } from './read.js';
import { ensureRecordSet } from './records.js';
import { renderPreroutingPayload, renderSyncPayload, type RenderOptions } from './render.js';
import {
  applySetBatch,
  readFamilySets,
  readLeftovers,
  readSetHeaders,
  SetApplyError,
  type SetHeader,
} from './ipset.js';
import { SetTracker, type SetsUpdate } from './set-tracker.js';
import {
  capacityFor,
  diffLines,
  diffSets,
  familySets,
  renderSetDelta,
  renderSetDeltas,
  renderSetsFull,
  SET_ROLES,
  setGone,
  setOutgrown,
  SET_TYPES,
  setName,
  setsDiffer,
  type FamilySets,
  type SetRole,
  type SetsDiff,
} from './sets.js';
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
  /**
   * Established and related packets skip the lookups. Only when revoking a
   * source also cuts its live connections; default false.
   */
  readonly fastPath?: boolean;
  /** Called after each set write, e.g. for tests and benchmarks. */
  readonly onSetWrite?: (kind: 'elements' | 'swap', family: Family, batch: string) => void;
}

/** The chains' drift and the sets' as one report: set elements as `SET element` lines. */
function setsDrift(family: Family, diff: SetsDiff): IptablesDrift {
  return {
    missing: diffLines(family, diff.add),
    unexpected: diffLines(family, diff.remove),
    reordered: false,
    chainsMissing: [...diff.structural],
    jumpWrong: false,
  };
}

/** What one family's last sync left in the kernel (and asked for). */
interface KnownFamily {
  readonly placement: Placement;
  /** The owned chains' rules (jump positions aside). */
  readonly chains: string;
  /** Each set's maxelem. */
  readonly capacity: ReadonlyMap<SetRole, number>;
}

export { DockerChainsMissingError };

const NO_DRIFT: IptablesDrift = {
  missing: [],
  unexpected: [],
  reordered: false,
  chainsMissing: [],
  jumpWrong: false,
};

/** Every line of `found` is one of `asked`. */
function within(found: readonly string[], asked: ReadonlySet<string> | undefined): boolean {
  return found.every((line) => asked?.has(line) === true);
}

/** The chains' and the sets' drift in the shape every backend reports. */
function neutralDrift(chains: IptablesDrift, sets: IptablesDrift): Drift {
  return {
    missing: [...sets.missing, ...chains.missing],
    unexpected: [...sets.unexpected, ...chains.unexpected],
    reordered: chains.reordered,
    structural: [
      ...sets.chainsMissing.map((problem) => `set ${problem}`),
      ...chains.chainsMissing.map((chain) => `chain ${chain}`),
      ...(chains.jumpWrong ? [JUMP_WRONG] : []),
    ],
  };
}

export class IptablesReconciler {
  private readonly deps: DetectDeps;
  private ipv6Unavailable = false;
  /** Per family, what the last sync left; cleared by any sync that does not finish. */
  private readonly known = new Map<Family, KnownFamily>();
  /** Per family, the verdict sets as asked for, kept from sync to sync. */
  private readonly trackers = new Map<Family, SetTracker>();
  /** Per family, the chains the last sync asked for (to tell an expected write from a repair). */
  private readonly lastChains = new Map<Family, string>();
  /**
   * Families whose desired content changed in a sync that did not finish, with the
   * element lines the tracker moved by since the family's last finished sync: what a
   * write may still carry of the containers' own change (not a repair).
   */
  private readonly unfinished = new Map<Family, { add: Set<string>; remove: Set<string> }>();
  /** Families whose record ipset is known to exist. */
  private readonly recordSets = new Set<Family>();
  private noIpset = false;
  /** The variant Docker's rules were last found in, per family. */
  private readonly lastVariant = new Map<Family, Variant>();

  constructor(private readonly options: IptablesReconcilerOptions) {
    this.deps = { run: options.run, legacyTableNames: options.legacyTableNames ?? procLegacyTableNames };
  }

  /** IPv6's placement; undefined once ip6tables turned out not to be installed. */
  private async ipv6Placement(ipv4Variant: Variant | PromiseLike<Variant>): Promise<Placement | undefined> {
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
  async reconcile(desired: DesiredState, options: ReconcileOptions = {}): Promise<FamilyReport[]> {
    if (options.trustLastSync === true) {
      try {
        const reports = await this.reconcileTrusted(desired);
        if (reports !== undefined) return reports;
      } catch (error) {
        // A tool that hangs fails the sync; anything else reads and compares below,
        // whose error (a missing tool, Docker's chains gone) is the one to report.
        if (error instanceof CommandError && error.timedOut) throw error;
      }
    }
    // A periodic check may take the sets' elements as the last sync left them
    // when their headers agree (lightSets): only for families that sync finished.
    const light = options.periodic === undefined ? new Set<Family>() : new Set(this.known.keys());
    this.known.clear();
    // Both families' tables are read side by side; IPv6 waits for IPv4's variant only when
    // it has no Docker chains of its own.
    // Every promise here is settled before this method returns or throws, whichever
    // side fails first (one left rejecting unheard would end the process).
    const ipv4Read = detectIpv4(this.deps);
    const ipv4Variant = ipv4Read.then((placement) => placement?.variant ?? 'nft');
    const ipv6Read = this.ipv6Placement(ipv4Variant);
    const settled = Promise.allSettled([ipv4Read, ipv4Variant, ipv6Read]);
    const ipv4 = await ipv4Read.catch(async (error: unknown) => {
      await settled;
      throw error;
    });
    if (!ipv4) {
      await settled;
      // Docker's chains are gone (an `nft flush ruleset`, an engine starting): its DNAT
      // with them, but docker-proxy may still listen on the published ports. The
      // bindings do not depend on Docker's chains: put them back where they were.
      await this.restoreBindings(desired);
      throw new DockerChainsMissingError("Docker's chains are not in iptables-nft nor iptables-legacy yet");
    }
    // One read of the sets' headers serves both families' light checks.
    let headers: Promise<Map<string, SetHeader>> | undefined;
    const readHeaders = () => (headers ??= readSetHeaders(this.options.run));
    const lightFor = (family: Family) => (light.has(family) ? readHeaders : undefined);
    // Separate tables, separate transactions: read and write both families side by side,
    // both finished (or failed) before the sync is.
    const [v4, v6] = await settleAll([
      this.reconcileFamily(desired, ipv4, lightFor(4)),
      ipv6Read.then(
        (placement) => placement && this.reconcileFamily(desired, placement, lightFor(placement.family)),
      ),
    ]);
    return v6 ? [v4, v6] : [v4];
  }

  /** The owned chains' rules for `desired`, as one text (the jump's position aside). */
  private chainsText(desired: DesiredState, family: Family, parent: string, options: RenderOptions): string {
    const first = { positions: [1] };
    return ownedPart(
      renderPreroutingPayload(desired, family, { parent: PREROUTING, ...first }, options) +
        renderSyncPayload(desired, family, { parent, ...first }, options),
    );
  }

  /**
   * After container events alone, what the last sync left is what the kernel
   * holds: write each family's element difference without reading anything
   * back. Undefined (then the caller reads and compares) when nothing is known,
   * the chains would change, a set would outgrow its size, or the batch fails.
   */
  private async reconcileTrusted(desired: DesiredState): Promise<FamilyReport[] | undefined> {
    const known = [...this.known.values()];
    if (!this.known.has(4)) return undefined;
    this.known.clear();
    const plans = [];
    for (const last of known) {
      const { family, parent } = last.placement;
      const options = await this.renderOptions(family);
      if (this.chainsText(desired, family, parent, options) !== last.chains) return undefined;
      const { sizes, add, remove } = this.want(desired, family);
      if (SET_ROLES.some((role) => (sizes.get(role) ?? 0) > (last.capacity.get(role) ?? 0))) return undefined;
      plans.push({ last, diff: { structural: [], add, remove } satisfies SetsDiff });
    }
    const deltas = plans.map(({ last, diff }) => ({ family: last.placement.family, diff }));
    // One tool process for both families (a change costs one process start, not two),
    // step by step across them: a failing line holds back no family's closing steps.
    const batch = renderSetDeltas(deltas);
    if (batch === undefined) return undefined;
    try {
      await applySetBatch(this.options.run, 4, batch);
      // Each family's part spelled again only for a listener (tests): not on every event.
      const onSetWrite = this.options.onSetWrite;
      if (onSetWrite !== undefined)
        for (const { family, diff } of deltas) {
          const delta = renderSetDelta(family, diff) ?? '';
          if (delta !== '') onSetWrite('elements', family, delta);
        }
    } catch (error) {
      // Someone changed a set behind dockfw's back: read and compare.
      if (error instanceof SetApplyError) return undefined;
      throw error;
    }
    return plans.map(({ last, diff }) => {
      const { family, variant, parent } = last.placement;
      this.known.set(family, last);
      const written = setsDiffer(diff);
      const desiredChanged = written || this.unfinished.has(family);
      this.unfinished.delete(family);
      return {
        family,
        placement: { kind: 'iptables', variant, parent },
        drift: neutralDrift(NO_DRIFT, setsDrift(family, diff)),
        written,
        desiredChanged,
      };
    });
  }

  /** The family's sets for `desired`, and what changed since the last sync asked (noted until one finishes). */
  private want(desired: DesiredState, family: Family): SetsUpdate {
    let tracker = this.trackers.get(family);
    if (tracker === undefined) {
      tracker = new SetTracker(family);
      this.trackers.set(family, tracker);
    }
    const update = tracker.update(desired);
    if ([...update.add.values(), ...update.remove.values()].some((e) => e.length > 0)) {
      let pending = this.unfinished.get(family);
      if (pending === undefined) {
        pending = { add: new Set(), remove: new Set() };
        this.unfinished.set(family, pending);
      }
      for (const line of diffLines(family, update.add)) pending.add.add(line);
      for (const line of diffLines(family, update.remove)) pending.remove.add(line);
    }
    return update;
  }

  /** The mangle part alone, in the variant each family last had: what judges docker-proxy's path. */
  private async restoreBindings(desired: DesiredState): Promise<void> {
    for (const [family, variant] of this.lastVariant) {
      const records = await this.renderOptions(family);
      await this.writeSets(family, familySets(desired, family));
      const mangle = await readFilterTable(this.options.run, family, variant, 'mangle');
      const positions = jumpPositions(mangle, PREROUTING, CHAIN_PRE);
      const payload = renderPreroutingPayload(desired, family, { parent: PREROUTING, positions }, records);
      if (hasDrift(diffOwned(mangle, payload, positions, 'mangle')))
        await applyPayload(this.options.run, family, variant, payload);
    }
  }

  private async renderOptions(family: Family): Promise<RenderOptions> {
    return { records: await this.recording(family), fastPath: this.options.fastPath === true };
  }

  /**
   * Brings the family's verdict sets to `want`: only the elements that differ
   * when the sets are there (ordered so no moment admits more than both ends),
   * else (or when that batch fails) every set filled aside and swapped in.
   * Resolves with the drift found.
   */
  private async writeSets(
    family: Family,
    want: FamilySets,
  ): Promise<{ drift: IptablesDrift; capacity: ReadonlyMap<SetRole, number> }> {
    const seen = await readFamilySets(this.options.run, family);
    const diff = diffSets(family, want, seen);
    const seenCapacity = new Map(
      SET_ROLES.map((role) => [role, seen.get(setName(role, family))?.maxelem ?? 0] as const),
    );
    if (!setsDiffer(diff)) return { drift: setsDrift(family, diff), capacity: seenCapacity };
    const delta = diff.structural.length === 0 ? renderSetDelta(family, diff) : undefined;
    if (delta !== undefined) {
      try {
        await applySetBatch(this.options.run, family, delta);
        this.options.onSetWrite?.('elements', family, delta);
        return { drift: setsDrift(family, diff), capacity: seenCapacity };
      } catch (error) {
        // Someone changed a set between our read and write: write them whole.
        if (!(error instanceof SetApplyError)) throw error;
      }
    }
    const again = delta === undefined ? seen : await readFamilySets(this.options.run, family);
    const present = new Set(SET_ROLES.map((role) => setName(role, family)).filter((name) => again.has(name)));
    const wrongType = SET_ROLES.filter((role) => {
      const set = again.get(setName(role, family));
      return (
        set !== undefined &&
        (set.type !== SET_TYPES[role] || set.family !== (family === 4 ? 'inet' : 'inet6'))
      );
    });
    if (wrongType.length > 0)
      throw new SetApplyError(
        `ipset ${wrongType.map((role) => setName(role, family)).join(', ')}: not the type dockfw makes; destroy ${wrongType.length === 1 ? 'it' : 'them'} (dockfw makes ${wrongType.length === 1 ? 'it' : 'them'} again)`,
        family,
      );
    const full = renderSetsFull(family, want, present, await readLeftovers(this.options.run, family));
    await applySetBatch(this.options.run, family, full);
    this.options.onSetWrite?.('swap', family, full);
    return { drift: setsDrift(family, diff), capacity: capacityFor(want) };
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

  /**
   * The periodic check's read of the sets: their headers only. When each set is
   * there, of dockfw's type, and holds as many elements as the last sync asked
   * for, the elements are taken as that sync left them and only what the
   * containers changed since is written. Undefined: read and compare them whole.
   * (An element swapped for another behind dockfw's back keeps the count: the
   * sync reads every element every DEEP_CHECK_EVERY checks.)
   */
  private async lightSets(
    family: Family,
    before: ReadonlyMap<SetRole, number>,
    update: SetsUpdate,
    readHeaders: () => Promise<ReadonlyMap<string, SetHeader>>,
  ): Promise<{ drift: IptablesDrift; capacity: ReadonlyMap<SetRole, number> } | undefined> {
    const headers = await readHeaders();
    const capacity = new Map<SetRole, number>();
    for (const role of SET_ROLES) {
      const header = headers.get(setName(role, family));
      if (
        header === undefined ||
        header.type !== SET_TYPES[role] ||
        header.family !== (family === 4 ? 'inet' : 'inet6') ||
        header.entries !== before.get(role) ||
        (update.sizes.get(role) ?? 0) > header.maxelem
      )
        return undefined;
      capacity.set(role, header.maxelem);
    }
    const diff = { structural: [], add: update.add, remove: update.remove } satisfies SetsDiff;
    const delta = renderSetDelta(family, diff) ?? '';
    try {
      await applySetBatch(this.options.run, family, delta);
    } catch (error) {
      if (error instanceof SetApplyError) return undefined;
      throw error;
    }
    if (delta !== '') this.options.onSetWrite?.('elements', family, delta);
    return { drift: setsDrift(family, diff), capacity };
  }

  /** Both owned layers' payloads and how the kernel differs from them (`table`: filter, read already). */
  private async readChains(
    desired: DesiredState,
    placement: Placement,
    options: RenderOptions,
    table?: FilterTable,
  ): Promise<{ prePayload: string; filterPayload: string; chainsDrift: IptablesDrift }> {
    const { family, variant, parent } = placement;
    const [mangle, filter] = await Promise.all([
      readFilterTable(this.options.run, family, variant, 'mangle'),
      table ?? readFilterTable(this.options.run, family, variant),
    ]);
    const prePositions = jumpPositions(mangle, PREROUTING, CHAIN_PRE);
    const prePayload = renderPreroutingPayload(
      desired,
      family,
      { parent: PREROUTING, positions: prePositions },
      options,
    );
    const positions = jumpPositions(filter, parent, CHAIN_ENTRY);
    const filterPayload = renderSyncPayload(desired, family, { parent, positions }, options);
    const chainsDrift = mergeDrift(
      diffOwned(mangle, prePayload, prePositions, 'mangle'),
      diffOwned(filter, filterPayload, positions),
    );
    return { prePayload, filterPayload, chainsDrift };
  }

  /** `light`: a periodic check, with the sets' headers to read (lightSets). */
  private async reconcileFamily(
    desired: DesiredState,
    placement: Placement,
    light?: () => Promise<ReadonlyMap<string, SetHeader>>,
  ): Promise<FamilyReport> {
    const { family, variant, parent } = placement;
    const options = await this.renderOptions(family);
    let read = await this.readChains(desired, placement, options, placement.table);
    const before = light === undefined ? undefined : this.trackers.get(family)?.sizes();
    const update = this.want(desired, family);
    // The sets first: the chains look them up (a new chain must find its sets filled).
    const checked =
      before === undefined || light === undefined
        ? undefined
        : await this.lightSets(family, before, update, light);
    const { drift: setDrift, capacity } = checked ?? (await this.writeSets(family, update.sets()));
    // A set in use cannot be destroyed: one gone means its rules went first, perhaps after
    // the chains were read (the jumps too). Read them again, so this write puts all back.
    if (setDrift.chainsMissing.some(setGone)) read = await this.readChains(desired, placement, options);
    const { prePayload, filterPayload, chainsDrift } = read;
    const written = hasDrift(mergeDrift(setDrift, chainsDrift));
    // mangle first: it is the binding's judge, and filter's catch-all keeps unseen containers closed meanwhile.
    const payload = prePayload + filterPayload;
    const chains = this.chainsText(desired, family, parent, options);
    const lastChains = this.lastChains.get(family);
    const desiredChanged = this.unfinished.has(family) || lastChains !== chains;
    // Chains off though the same were asked, a set gone (or not of its type), or elements beyond what the containers
    // changed: someone else's change put back, whatever else this write carries.
    // (What the containers changed is counted since the family's last finished sync: a
    // batch that failed in the other family's lines left part of this one's unwritten.)
    const pending = this.unfinished.get(family);
    const repaired =
      lastChains !== undefined &&
      ((lastChains === chains && hasDrift(chainsDrift)) ||
        setDrift.chainsMissing.some((problem) => !setOutgrown(problem)) ||
        !within(setDrift.missing, pending?.add) ||
        !within(setDrift.unexpected, pending?.remove));
    if (hasDrift(chainsDrift)) {
      try {
        await applyPayload(this.options.run, family, variant, payload);
      } catch (error) {
        // Perhaps someone destroyed the record set: make sure of it again next time.
        this.recordSets.delete(family);
        throw error;
      }
    }
    this.lastChains.set(family, chains);
    this.unfinished.delete(family);
    this.lastVariant.set(family, variant);
    const removedFrom = await this.removeLeftovers(placement);
    this.known.set(family, { placement, chains, capacity });
    return {
      family,
      placement: { kind: 'iptables', variant, parent },
      drift: neutralDrift(chainsDrift, setDrift),
      written,
      desiredChanged,
      ...(repaired ? { repaired } : {}),
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
