import { describe, expect, it } from 'vitest';
import { DaemonState } from './state.js';
import { exampleDesired, familyReport } from './test-support.js';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5);

function state() {
  return new DaemonState({ version: '1.2.3', defaultPolicy: 'allow', now: () => NOW });
}

describe('DaemonState', () => {
  it('is not ready before it has connected and synced, and says why', () => {
    const s = state();
    expect(s.notReady()).toEqual(['docker event stream not connected', 'first sync not done yet']);
    s.dockerConnected();
    expect(s.notReady()).toEqual(['first sync not done yet']);
  });

  it('is ready after a successful sync while connected', () => {
    const s = state();
    s.dockerConnected();
    s.syncApplied(exampleDesired(), [familyReport(4, true), familyReport(6, false)]);
    s.syncFinished(12.4);
    expect(s.notReady()).toEqual([]);
    const report = s.report();
    expect(report).toMatchObject({
      version: '1.2.3',
      ready: true,
      defaultPolicy: 'allow',
      docker: { connected: true },
      lastSync: { ok: true, at: '2026-01-02T03:04:05.000Z', durationMs: 12 },
      lastSuccessfulSync: '2026-01-02T03:04:05.000Z',
      firewall: [
        { family: 4, variant: 'nft', parent: 'DOCKER-USER' },
        { family: 6, variant: 'nft', parent: 'DOCKER-USER' },
      ],
    });
    expect(report.containers.map((c) => [c.name, c.state])).toEqual([
      ['db', 'closed-invalid-label'],
      ['web', 'enforced'],
    ]);
    expect(report.labelErrors).toEqual([expect.objectContaining({ container: 'db', label: 'dockfw.allow' })]);
    expect(s.lastSuccessSeconds).toBe(NOW / 1000);
  });

  it('is not ready after a failed sync, keeps the last good containers, and recovers', () => {
    const s = state();
    s.dockerConnected();
    s.syncApplied(exampleDesired(), [familyReport(4, true)]);
    s.syncFinished(5);
    s.syncFinished(7, new Error('iptables-restore: line 3 failed'));
    expect(s.notReady()).toEqual(['last sync failed: iptables-restore: line 3 failed']);
    expect(s.report().lastSync).toMatchObject({ ok: false, error: 'iptables-restore: line 3 failed' });
    expect(s.report().lastSuccessfulSync).toBe('2026-01-02T03:04:05.000Z');
    expect(s.containers).toHaveLength(2);
    s.syncFinished(3);
    expect(s.notReady()).toEqual([]);
  });

  it('is not ready while Docker is unreachable, even if the last sync was fine', () => {
    const s = state();
    s.dockerConnected();
    s.syncFinished(3);
    s.dockerDisconnected();
    expect(s.notReady()).toEqual(['docker event stream not connected']);
  });

  it('counts rewrites per family (each one resets the chains’ counters)', () => {
    const s = state();
    s.syncApplied(exampleDesired(), [familyReport(4, true), familyReport(6, false)]);
    s.syncApplied(exampleDesired(), [familyReport(4, true), familyReport(6, true)]);
    expect([s.writeCount(4), s.writeCount(6)]).toEqual([2, 1]);
  });
});
