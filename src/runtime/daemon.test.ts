import { describe, expect, it } from 'vitest';
import { NO_DRIFT, type FamilyReport, type ReconcileOptions } from '../backends/firewall.js';
import { defaultConfig } from '../config/config.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import type { DesiredState } from '../policy/desired.js';
import { Daemon, MAX_RECHECKS, RECHECK_AFTER_REPAIR_MS } from './daemon.js';
import { FakeClock } from './fake-clock.js';

/** A write that put back someone else's change: nothing dockfw asked for changed. */
const REPAIR: FamilyReport = {
  family: 4,
  placement: { kind: 'nftables', table: 'dockfw' },
  drift: { ...NO_DRIFT, missing: ['rule x'] },
  written: true,
  desiredChanged: false,
};

class CountingFirewall {
  readonly seen: DesiredState[] = [];
  readonly options: (ReconcileOptions | undefined)[] = [];
  /** The fake clock's time at each reconcile. */
  readonly at: number[] = [];
  /** How long each reconcile takes, in the fake clock's time. */
  takesMs = 0;
  /** The reports of the next reconciles, in order; then none. */
  readonly reports: FamilyReport[][] = [];
  constructor(private readonly clock?: FakeClock) {}
  async reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<FamilyReport[]> {
    this.seen.push(desired);
    this.options.push(options);
    this.at.push(this.clock?.now() ?? NaN);
    if (this.takesMs > 0) await new Promise<void>((resolve) => this.clock?.setTimeout(resolve, this.takesMs));
    return this.reports.shift() ?? [];
  }
}

function setup() {
  const docker = new FakeDockerClient();
  docker.containers.set('1'.repeat(64), inspectJson({ id: '1'.repeat(64), name: 'web' }));
  const clock = new FakeClock();
  const firewall = new CountingFirewall(clock);
  const { logger, records } = memoryLogger();
  const daemon = new Daemon({ config: defaultConfig(), docker, firewall, logger, clock });
  const warnings = () => records.filter((r) => r.level >= 40).map((r) => r.msg);
  return { docker, clock, firewall, daemon, records, warnings };
}

describe('Daemon', () => {
  it('collects garbage once after a sync of a second or more, where node exposes gc; not after quick ones', async () => {
    const collected: number[] = [];
    const global = globalThis as { gc?: () => void };
    const before = global.gc;
    global.gc = () => collected.push(1);
    try {
      const { docker, clock, firewall, daemon } = setup();
      firewall.takesMs = 1200;
      daemon.start();
      await clock.advance(2000);
      await new Promise((resolve) => setImmediate(resolve));
      expect(firewall.seen).toHaveLength(1);
      expect(collected).toHaveLength(1);
      firewall.takesMs = 50;
      docker.emit({ type: 'container', action: 'start', actorId: 'x', containerId: 'x', name: undefined });
      await clock.advance(500);
      await new Promise((resolve) => setImmediate(resolve));
      expect(firewall.seen).toHaveLength(2);
      expect(collected).toHaveLength(1);
      await daemon.stop();
    } finally {
      if (before === undefined) delete global.gc;
      else global.gc = before;
    }
  });

  it('checks once more soon after a repair (outside changes come in bursts), and not after a sync in step', async () => {
    const { clock, firewall, daemon } = setup();
    firewall.reports.push([REPAIR], [REPAIR], []);
    daemon.start();
    await clock.advance(5 * RECHECK_AFTER_REPAIR_MS);
    expect(firewall.seen).toHaveLength(3);
    // Each repair is followed by a periodic check (light) that long after, the second's repair too.
    const gaps = [1, 2].map((i) => (firewall.at[i] ?? NaN) - (firewall.at[i - 1] ?? NaN));
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(RECHECK_AFTER_REPAIR_MS);
      expect(gap).toBeLessThan(RECHECK_AFTER_REPAIR_MS + 200);
    }
    expect(firewall.options.slice(1).map((o) => o?.periodic !== undefined)).toEqual([true, true]);
    // That one found the kernel in step: nothing more until something asks.
    await clock.advance(10 * RECHECK_AFTER_REPAIR_MS);
    expect(firewall.seen).toHaveLength(3);
    await daemon.stop();
  });

  it('stops rechecking after a few in a row against a writer that keeps undoing the rules', async () => {
    const { clock, firewall, daemon } = setup();
    firewall.reports.push(...Array.from({ length: 20 }, () => [REPAIR]));
    daemon.start();
    await clock.advance(20 * RECHECK_AFTER_REPAIR_MS);
    // The first repair and MAX_RECHECKS checks after it; then the period (a minute) resumes.
    expect(firewall.seen).toHaveLength(1 + MAX_RECHECKS);
    await daemon.stop();
  });

  it('asks for no recheck once stopped', async () => {
    const { clock, firewall, daemon } = setup();
    firewall.reports.push([REPAIR]);
    daemon.start();
    await clock.advance(200);
    expect(firewall.seen).toHaveLength(1);
    await daemon.stop();
    await clock.advance(5 * RECHECK_AFTER_REPAIR_MS);
    expect(firewall.seen).toHaveLength(1);
  });

  it('syncs once connected, and says "docker unreachable" once however long the outage lasts', async () => {
    const { docker, clock, firewall, daemon, warnings } = setup();
    daemon.start();
    await clock.advance(200);
    expect(firewall.seen).toHaveLength(1);

    // The last events arrive as the engine goes down; the syncs they ask for fail.
    docker.reachable = false;
    docker.emit({ type: 'container', action: 'die', actorId: 'x', containerId: 'x', name: undefined });
    await clock.advance(150);
    docker.endStreams();
    await clock.advance(60_000);
    expect(warnings()).toEqual(['docker unreachable: keeping rules, retrying']);

    const before = firewall.seen.length;
    docker.reachable = true;
    await clock.advance(6_000);
    expect(firewall.seen.length).toBeGreaterThan(before);
    expect(warnings()).toHaveLength(1);
    await daemon.stop();
  });

  it('warns once when the engine answers but listing fails, and says when it works again', async () => {
    const { docker, clock, firewall, daemon, records, warnings } = setup();
    daemon.start();
    await clock.advance(200);
    const list = docker.listContainers.bind(docker);
    docker.listContainers = () =>
      Promise.reject(Object.assign(new Error('(HTTP code 500) server error'), { statusCode: 500 }));
    docker.emit({ type: 'container', action: 'start', actorId: 'x', containerId: 'x', name: undefined });
    await clock.advance(10_000);
    expect(warnings()).toEqual(['sync failed: cannot read containers from docker']);
    docker.listContainers = list;
    await clock.advance(30_000);
    expect(records.filter((r) => r.msg === 'sync succeeded again')).toHaveLength(1);
    expect(firewall.seen.length).toBeGreaterThanOrEqual(2);
    await daemon.stop();
  });
});
