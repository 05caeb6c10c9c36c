// The runtime's hooks, end to end through the real Daemon with a fake engine,
// a fake firewall and a manual clock.
import { afterEach, describe, expect, it } from 'vitest';
import type { FamilyReport } from '../backends/firewall.js';
import { defaultConfig } from '../config/config.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import type { DesiredState } from '../policy/desired.js';
import { Daemon } from '../runtime/daemon.js';
import { FakeClock } from '../runtime/fake-clock.js';
import type { FirewallSync as Firewall } from '../backends/firewall.js';
import { fanOut } from './index.js';
import { memoryLogger } from './memory-logger.js';
import { DaemonMetrics } from './metrics.js';
import { DaemonState } from './state.js';
import { familyReport } from './test-support.js';

class ScriptedFirewall implements Firewall {
  failWith: Error | undefined;
  written = true;
  reconcile(_desired: DesiredState): Promise<FamilyReport[]> {
    if (this.failWith) return Promise.reject(this.failWith);
    return Promise.resolve([familyReport(4, this.written)]);
  }
}

let daemon: Daemon | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

function setup() {
  const docker = new FakeDockerClient();
  docker.containers.set(
    '1'.repeat(64),
    inspectJson({ id: '1'.repeat(64), name: 'web', labels: { 'dockfw.allow': 'any' } }),
  );
  const firewall = new ScriptedFirewall();
  const clock = new FakeClock();
  const { logger } = memoryLogger();
  const state = new DaemonState({ version: '1', defaultPolicy: 'allow' });
  const metrics = new DaemonMetrics({
    state,
    logger,
    version: '1',
    readCounters: () => Promise.resolve({ drops: new Map(), catchAll: { packets: 0, bytes: 0 }, rules: 0 }),
  });
  daemon = new Daemon({
    config: defaultConfig(),
    docker,
    firewall,
    logger,
    clock,
    observer: fanOut([state, metrics], logger),
  });
  daemon.start();
  return { docker, firewall, clock, state, metrics };
}

const value = async (metrics: DaemonMetrics, name: string) => {
  const line = (await metrics.render()).split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
};

describe('Daemon with observers', () => {
  it('becomes ready after its first sync and lists the containers it manages', async () => {
    const { clock, state, metrics } = setup();
    expect(state.notReady()).not.toEqual([]);
    await clock.advance(1000);
    expect(state.notReady()).toEqual([]);
    expect(state.containers.map((c) => c.name)).toEqual(['web']);
    expect(await value(metrics, 'dockfw_syncs_total{result="success"}')).toBe(1);
  });

  it('is not ready while syncs fail, and ready again after one succeeds', async () => {
    const { clock, firewall, state, metrics } = setup();
    firewall.failWith = new Error('iptables-restore: line 2 failed');
    await clock.advance(50);
    expect(state.notReady()).toEqual(['last sync failed: iptables-restore: line 2 failed']);
    expect(await value(metrics, 'dockfw_syncs_total{result="failure"}')).toBe(1);
    firewall.failWith = undefined;
    // The runner retries after its backoff.
    await clock.advance(5000);
    expect(state.notReady()).toEqual([]);
    expect(await value(metrics, 'dockfw_syncs_total{result="success"}')).toBe(1);
  });

  it('is not ready while the event stream is down; a reconnect is counted', async () => {
    const { clock, docker, state, metrics } = setup();
    await clock.advance(1000);
    docker.reachable = false;
    docker.endStreams();
    await clock.advance(10);
    expect(state.notReady()).toEqual(['docker event stream not connected']);
    docker.reachable = true;
    await clock.advance(10_000);
    expect(state.notReady()).toEqual([]);
    expect(await value(metrics, 'dockfw_event_stream_reconnects_total')).toBe(1);
  });
});
