import { describe, expect, it } from 'vitest';
import type { Placement } from '../backends/firewall.js';
import type { Family } from '../docker/snapshot.js';
import { memoryLogger } from './memory-logger.js';
import type { FamilyCounters } from './counters.js';
import { DaemonMetrics } from './metrics.js';
import { DaemonState } from './state.js';
import { DB_ID, exampleDesired, familyReport, WEB_ID } from './test-support.js';

/** A kernel whose counters the test sets; every read is recorded. */
class FakeKernel {
  readonly reads: string[] = [];
  failing = false;
  counters = new Map<Family, FamilyCounters>();

  /** Like the real backends: the nftables one keeps no rule counters (it reads nothing). */
  read = (family: Family, placement: Placement): Promise<FamilyCounters | undefined> => {
    if (placement.kind !== 'iptables') return Promise.resolve(undefined);
    this.reads.push(`${family}/${placement.variant}`);
    if (this.failing) return Promise.reject(new Error('iptables-nft-save: not found'));
    const found = this.counters.get(family);
    return found ? Promise.resolve(found) : Promise.reject(new Error(`no family ${family}`));
  };

  set(family: Family, drops: Record<string, number>, rules: number, catchAll = 0): void {
    this.counters.set(family, {
      drops: new Map(
        Object.entries(drops).map(([id, packets]) => [id.slice(0, 12), { packets, bytes: packets * 60 }]),
      ),
      catchAll: { packets: catchAll, bytes: catchAll * 60 },
      rules,
    });
  }
}

function setup() {
  const state = new DaemonState({ version: '1.2.3', defaultPolicy: 'allow' });
  const kernel = new FakeKernel();
  const { logger, records } = memoryLogger();
  const metrics = new DaemonMetrics({ state, readCounters: kernel.read, version: '1.2.3', logger });
  return { state, kernel, metrics, records };
}

/** The value of one sample line, e.g. `dockfw_syncs_total{result="success"}`. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('DaemonMetrics', () => {
  it('starts with zero syncs of either result and no drop counters', async () => {
    const { metrics } = setup();
    const text = await metrics.render();
    expect(sample(text, 'dockfw_syncs_total{result="success"}')).toBe(0);
    expect(sample(text, 'dockfw_syncs_total{result="failure"}')).toBe(0);
    expect(sample(text, 'dockfw_last_successful_sync_timestamp_seconds')).toBe(0);
    expect(sample(text, 'dockfw_managed_containers')).toBe(0);
    expect(sample(text, 'dockfw_ready')).toBe(0);
    expect(sample(text, 'dockfw_build_info{version="1.2.3"}')).toBe(1);
    expect(text).not.toContain('dockfw_dropped_packets_total{');
  });

  it('counts syncs by result and observes their duration', async () => {
    const { metrics } = setup();
    metrics.syncFinished(20);
    metrics.syncFinished(3000, new Error('boom'));
    const text = await metrics.render();
    expect(sample(text, 'dockfw_syncs_total{result="success"}')).toBe(1);
    expect(sample(text, 'dockfw_syncs_total{result="failure"}')).toBe(1);
    expect(sample(text, 'dockfw_sync_duration_seconds_count')).toBe(2);
    expect(sample(text, 'dockfw_sync_duration_seconds_sum')).toBeCloseTo(3.02);
    expect(sample(text, 'dockfw_sync_duration_seconds_bucket{le="0.025"}')).toBe(1);
  });

  it('reads state at scrape time: managed containers, readiness, last success', async () => {
    const { state, kernel, metrics } = setup();
    kernel.set(4, {}, 5);
    state.dockerConnected();
    state.syncApplied(exampleDesired(), [familyReport(4, true)]);
    state.syncFinished(1);
    const text = await metrics.render();
    expect(sample(text, 'dockfw_managed_containers')).toBe(2);
    expect(sample(text, 'dockfw_ready')).toBe(1);
    expect(sample(text, 'dockfw_last_successful_sync_timestamp_seconds')).toBe(state.lastSuccessSeconds);
    expect(sample(text, 'dockfw_managed_rules{family="ipv4"}')).toBe(5);
  });

  it('reports drops per container name from the kernel, both families added, monotonic across rewrites', async () => {
    const { state, kernel, metrics } = setup();
    state.syncApplied(exampleDesired(), [familyReport(4, true), familyReport(6, true)]);
    kernel.set(4, { [WEB_ID]: 3, [DB_ID]: 1 }, 9, 2);
    kernel.set(6, { [WEB_ID]: 1 }, 4);
    let text = await metrics.render();
    expect(kernel.reads).toEqual(['4/nft', '6/nft']);
    expect(sample(text, 'dockfw_dropped_packets_total{container="web"}')).toBe(4);
    expect(sample(text, 'dockfw_dropped_bytes_total{container="web"}')).toBe(240);
    expect(sample(text, 'dockfw_dropped_packets_total{container="db"}')).toBe(1);
    expect(sample(text, 'dockfw_catch_all_dropped_packets_total')).toBe(2);
    // dockfw rewrites IPv4 (counters restart at 0 in the kernel), then one more drop.
    state.syncApplied(exampleDesired(), [familyReport(4, true), familyReport(6, false)]);
    kernel.set(4, { [WEB_ID]: 1, [DB_ID]: 0 }, 9);
    text = await metrics.render();
    expect(sample(text, 'dockfw_dropped_packets_total{container="web"}')).toBe(5);
    expect(sample(text, 'dockfw_dropped_packets_total{container="db"}')).toBe(1);
  });

  it('counts drift repairs per family and event stream reconnects (not the first connection)', async () => {
    const { metrics } = setup();
    metrics.driftRepaired(familyReport(4, true));
    metrics.driftRepaired(familyReport(4, true));
    metrics.dockerConnected(true);
    metrics.dockerConnected(false);
    const text = await metrics.render();
    expect(sample(text, 'dockfw_drift_repairs_total{family="ipv4"}')).toBe(2);
    expect(sample(text, 'dockfw_event_stream_reconnects_total')).toBe(1);
  });

  it('still serves the other metrics when the counters cannot be read, and says so once', async () => {
    const { state, kernel, metrics, records } = setup();
    state.syncApplied(exampleDesired(), [familyReport(4, true)]);
    kernel.failing = true;
    await metrics.render();
    const text = await metrics.render();
    expect(sample(text, 'dockfw_managed_containers')).toBe(2);
    expect(records.filter((r) => r.msg === 'cannot read rule counters')).toHaveLength(1);
    kernel.failing = false;
    kernel.set(4, {}, 3);
    await metrics.render();
    expect(records.filter((r) => r.msg === 'rule counters readable again')).toHaveLength(1);
  });

  it('reads no iptables counters when the nftables backend writes the rules', async () => {
    const { state, kernel, metrics } = setup();
    const nft = { ...familyReport(4, true), placement: { kind: 'nftables', table: 'inet dockfw' } as const };
    state.syncApplied(exampleDesired(), [nft, { ...nft, family: 6 }]);
    kernel.set(4, { [WEB_ID]: 3 }, 9);
    const text = await metrics.render();
    expect(kernel.reads).toEqual([]);
    expect(text).not.toContain('dockfw_dropped_packets_total{');
    expect(sample(text, 'dockfw_managed_containers')).toBe(2);
  });

  it('shares one kernel read between scrapes that arrive together', async () => {
    const { state, kernel, metrics } = setup();
    state.syncApplied(exampleDesired(), [familyReport(4, true)]);
    kernel.set(4, {}, 3);
    await Promise.all([metrics.render(), metrics.render(), metrics.render()]);
    expect(kernel.reads).toEqual(['4/nft']);
  });
});
