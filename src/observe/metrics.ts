// Prometheus metrics on their own Registry. Sync outcomes are counted as they
// happen (hooks); state-like values are read when scraped: from DaemonState,
// and dockfw's rule counters from the kernel (one iptables-save -c per family).
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { addTraffic as add, type FamilyReport, type Placement } from '../backends/firewall.js';
import type { Family } from '../docker/snapshot.js';
import { DropAttributor } from '../drops/attribute.js';
import type { DropRecord } from '../drops/record.js';
import { RecordTracker } from '../drops/tracker.js';
import { DropTotals, type FamilyCounters, type Traffic } from './counters.js';
import type { DaemonObserver } from './observer.js';
import type { DaemonState } from './state.js';

/** Reads one family's rule counters where the last sync placed them; undefined where the backend keeps none. */
export type CounterReader = (family: Family, placement: Placement) => Promise<FamilyCounters | undefined>;

export interface DaemonMetricsOptions {
  readonly state: DaemonState;
  readonly readCounters: CounterReader;
  readonly version: string;
  readonly logger: Logger;
  /** Node.js process metrics (process_*, nodejs_*); off in tests. */
  readonly processMetrics?: boolean;
  /**
   * The nftables backend's drop records (both families) with each set's
   * capacity: per-container drops there are summed from them.
   */
  readonly readRecords?: (
    backend: 'iptables' | 'nftables',
  ) => Promise<{ records: readonly DropRecord[]; capacity: ReadonlyMap<Family, number> }>;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : JSON.stringify(error);
}

/** How many records `dockfw_top_dropped_source_packets` shows (its label sets stay bounded). */
export const TOP_SOURCES = 10;

export class DaemonMetrics implements DaemonObserver {
  readonly registry = new Registry();
  private readonly syncDuration: Histogram;
  private readonly syncs: Counter<'result'>;
  private readonly driftRepairs: Counter<'family'>;
  private readonly reconnects: Counter;
  private readonly managedRules: Gauge<'family'>;
  private readonly droppedPackets: Counter<'container'>;
  private readonly droppedBytes: Counter<'container'>;
  private readonly catchAllPackets: Counter;
  private readonly drops = new DropTotals();
  private readonly recordTracker = new RecordTracker();
  /** Drops per 12-digit container id, summed from the records' new packets at each scrape. */
  private readonly recordTotals = new Map<string, Traffic>();
  private readonly records: Gauge<'family'>;
  private readonly recordCapacity: Gauge<'family'>;
  private readonly topSources: Gauge<'container' | 'port' | 'source'>;
  private readFailing = false;
  private rendering: Promise<string> | undefined;

  constructor(private readonly options: DaemonMetricsOptions) {
    const { state } = options;
    const registers = [this.registry];
    new Gauge({
      name: 'dockfw_build_info',
      help: 'Always 1; the version label says which dockfw runs',
      labelNames: ['version'],
      registers,
    }).set({ version: options.version }, 1);
    this.syncDuration = new Histogram({
      name: 'dockfw_sync_duration_seconds',
      help: 'Duration of full syncs (list containers, compute, read and maybe write the firewall)',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.syncs = new Counter({
      name: 'dockfw_syncs_total',
      help: 'Full syncs, by result (success or failure)',
      labelNames: ['result'],
      registers,
    });
    // Both results exist from the start, so rate() and alerts see a zero.
    this.syncs.inc({ result: 'success' }, 0);
    this.syncs.inc({ result: 'failure' }, 0);
    new Gauge({
      name: 'dockfw_last_successful_sync_timestamp_seconds',
      help: 'Unix time of the last successful sync (0: none yet)',
      registers,
      collect() {
        this.set(state.lastSuccessSeconds ?? 0);
      },
    });
    new Gauge({
      name: 'dockfw_ready',
      help: '1 when /readyz answers 200: docker connected and the last sync succeeded',
      registers,
      collect() {
        this.set(state.notReady().length === 0 ? 1 : 0);
      },
    });
    new Gauge({
      name: 'dockfw_managed_containers',
      help: 'Running containers with published ports, as of the last sync that reached the firewall',
      registers,
      collect() {
        this.set(state.containers.length);
      },
    });
    this.managedRules = new Gauge({
      name: 'dockfw_managed_rules',
      help: "Rules in dockfw's iptables chains, read from the kernel at scrape time (iptables backend)",
      labelNames: ['family'],
      registers,
    });
    this.driftRepairs = new Counter({
      name: 'dockfw_drift_repairs_total',
      help: 'Periodic checks that found the rules changed behind dockfw and re-applied them',
      labelNames: ['family'],
      registers,
    });
    this.reconnects = new Counter({
      name: 'dockfw_event_stream_reconnects_total',
      help: 'Reconnections of the Docker event stream after it was lost',
      registers,
    });
    this.droppedPackets = new Counter({
      name: 'dockfw_dropped_packets_total',
      help: "Packets from outside dropped by a container's dockfw rules (counted from the drop records)",
      labelNames: ['container'],
      registers,
    });
    this.droppedBytes = new Counter({
      name: 'dockfw_dropped_bytes_total',
      help: "Bytes from outside dropped by a container's dockfw rules (counted from the drop records)",
      labelNames: ['container'],
      registers,
    });
    this.catchAllPackets = new Counter({
      name: 'dockfw_catch_all_dropped_packets_total',
      help: 'Packets dropped by the catch-all (containers dockfw had not seen yet; iptables backend)',
      registers,
    });
    this.records = new Gauge({
      name: 'dockfw_drop_records',
      help: 'Drop records the kernel keeps now (outside source, destination, port), read at scrape time',
      labelNames: ['family'],
      registers,
    });
    this.recordCapacity = new Gauge({
      name: 'dockfw_drop_records_capacity',
      help: 'Size of the drop record set (a full set records no new sources; it still drops)',
      labelNames: ['family'],
      registers,
    });
    this.topSources = new Gauge({
      name: 'dockfw_top_dropped_source_packets',
      help: `Packets of the ${TOP_SOURCES} drop records with the most packets now (container, port/proto, source)`,
      labelNames: ['container', 'port', 'source'],
      registers,
    });
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
  }

  syncFinished(durationMs: number, error?: unknown): void {
    this.syncDuration.observe(durationMs / 1000);
    this.syncs.inc({ result: error === undefined ? 'success' : 'failure' });
  }

  driftRepaired(report: FamilyReport): void {
    this.driftRepairs.inc({ family: `ipv${report.family}` });
  }

  dockerConnected(first: boolean): void {
    if (!first) this.reconnects.inc();
  }

  /** The exposition text; reads the kernel's counters first. */
  render(): Promise<string> {
    // Scrapes that arrive together share one kernel read.
    this.rendering ??= this.refreshKernelCounters()
      .then(() => this.registry.metrics())
      .finally(() => (this.rendering = undefined));
    return this.rendering;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private async refreshKernelCounters(): Promise<void> {
    const { state, readCounters, logger } = this.options;
    this.managedRules.reset();
    let failed: unknown;
    // The rules' own counters (the catch-all's; per container only in chains an older
    // dockfw wrote): both backends judge containers by set lookups, counted by the records.
    for (const placement of state.families) {
      const { family } = placement;
      try {
        const counters = await readCounters(family, placement);
        if (counters === undefined) continue;
        this.drops.update(family, state.writeCount(family), counters);
        this.managedRules.set({ family: `ipv${family}` }, counters.rules);
      } catch (error) {
        failed = error;
      }
    }
    failed = (await this.refreshRecords()) ?? failed;
    // Say it once when reading starts failing and once when it works again.
    if (failed !== undefined && !this.readFailing) {
      logger.warn({ error: errorMessage(failed) }, 'cannot read rule counters');
    } else if (failed === undefined && this.readFailing) {
      logger.info('rule counters readable again');
    }
    this.readFailing = failed !== undefined;

    const names = new Map(state.containers.map((c) => [c.id.slice(0, 12), c.name]));
    this.droppedPackets.reset();
    this.droppedBytes.reset();
    this.catchAllPackets.reset();
    const totals = this.drops.totals();
    for (const [id12, traffic] of this.recordTotals) {
      const had = totals.get(id12);
      totals.set(id12, had === undefined ? traffic : add(had, traffic));
    }
    for (const [id12, traffic] of totals) {
      if (id12 === '') {
        this.catchAllPackets.inc(traffic.packets);
        continue;
      }
      // A container dockfw no longer lists (just removed) keeps its id as the name.
      const container = names.get(id12) ?? id12;
      this.droppedPackets.inc({ container }, traffic.packets);
      this.droppedBytes.inc({ container }, traffic.bytes);
    }
  }

  /**
   * One rule drops every guarded container (both backends look the verdicts up
   * in sets), so the per-container numbers come from the drop records: the packets each record counted since
   * the last scrape, added to its container's total. Drops of sources a full
   * set could not record are not in them (the rule counters still count them).
   */
  private async refreshRecords(): Promise<unknown> {
    const { state, readRecords } = this.options;
    this.records.reset();
    this.recordCapacity.reset();
    this.topSources.reset();
    const desired = state.lastDesired;
    const backend = state.backend;
    if (readRecords === undefined || backend === undefined || desired === null) return undefined;
    try {
      const { records, capacity } = await readRecords(backend);
      const attributor = new DropAttributor(desired);
      const top = [...records].sort((a, b) => b.packets - a.packets).slice(0, TOP_SOURCES);
      for (const r of top) {
        this.topSources.set(
          { container: attributor.owner(r)?.name ?? '', port: `${r.port}/${r.protocol}`, source: r.source },
          r.packets,
        );
      }
      // Both backends drop every judged container with one rule (a set lookup): the records say whose.
      const deltas = this.recordTracker.update(records, true);
      for (const delta of deltas) {
        const id12 = attributor.owner(delta.record)?.id.slice(0, 12);
        if (id12 === undefined) continue;
        const had = this.recordTotals.get(id12) ?? { packets: 0, bytes: 0 };
        this.recordTotals.set(id12, add(had, delta));
      }
      const counts = new Map<Family, number>();
      for (const r of records) counts.set(r.family, (counts.get(r.family) ?? 0) + 1);
      for (const [family, size] of capacity) {
        this.records.set({ family: `ipv${family}` }, counts.get(family) ?? 0);
        this.recordCapacity.set({ family: `ipv${family}` }, size);
      }
      // Containers no longer running are forgotten, like their iptables rules' counters.
      const running = new Set(desired.containers.map((c) => c.id.slice(0, 12)));
      for (const id12 of [...this.recordTotals.keys()])
        if (!running.has(id12)) this.recordTotals.delete(id12);
      return undefined;
    } catch (error) {
      return error;
    }
  }
}
