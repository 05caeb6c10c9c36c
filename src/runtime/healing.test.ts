// Self-healing with the real runner, sync and iptables reconciler against a
// stateful fake of the kernel table: checks that find nothing write nothing,
// outside damage is repaired once and logged as drift, and the ruleset watch
// cannot feed on dockfw's own writes.
import { describe, expect, it } from 'vitest';
import { IptablesReconciler } from '../backends/iptables/reconcile.js';
import { defaultConfig } from '../config/config.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import { Daemon } from './daemon.js';
import { FakeClock } from './fake-clock.js';
import { FakeIptablesKernel } from './fake-iptables-kernel.js';
import type { MonitorExit, MonitorProcess } from './nft-monitor.js';
import { RulesetWatch } from './ruleset-watch.js';
import { SyncRunner } from './runner.js';
import { createSync } from './sync.js';

/** `nft monitor` as the kernel would run it: a line per write, never exits on its own. */
class KernelMonitor implements MonitorProcess {
  private pending = 0;
  private wake: (() => void) | undefined;
  private done = false;
  readonly exited: Promise<MonitorExit>;
  private resolveExit!: (exit: MonitorExit) => void;

  constructor() {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  changed(): void {
    this.pending++;
    this.wake?.();
  }

  readonly lines: AsyncIterable<string> = {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<string>> => {
        for (;;) {
          if (this.pending > 0) {
            this.pending--;
            return { value: 'delete rule ip filter DOCKER-USER handle 7', done: false };
          }
          if (this.done) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      },
    }),
  };

  stop(): void {
    this.done = true;
    this.wake?.();
    this.resolveExit({ code: null, signal: 'SIGTERM', stderr: '' });
  }
}

const WEB_ID = 'a'.repeat(64);

function setup(options: { watch?: boolean; daemon?: boolean } = {}) {
  const clock = new FakeClock();
  const { logger, records } = memoryLogger();
  const docker = new FakeDockerClient();
  docker.containers.set(
    WEB_ID,
    inspectJson({ id: WEB_ID, name: 'web', labels: { 'dockfw.allow': '203.0.113.10' } }),
  );
  const kernel = new FakeIptablesKernel('nft');
  const firewall = new IptablesReconciler({ run: kernel.run, legacyTableNames: () => Promise.resolve('') });
  const drifts: number[] = [];
  const sync = createSync({
    docker,
    config: defaultConfig(),
    firewall,
    logger,
    observer: { driftRepaired: (report) => drifts.push(report.family) },
  });
  const runner = new SyncRunner({ clock, sync, onError: (error) => logger.error({ error }, 'sync failed') });
  const monitor = new KernelMonitor();
  // Our own writes show up in the monitor, as they do on a real nf_tables host.
  kernel.onWrite = () => monitor.changed();
  const watch = options.watch ? new RulesetWatch({ spawn: () => monitor, runner, logger, clock }) : undefined;
  watch?.start();
  const daemon = options.daemon
    ? new Daemon({
        config: defaultConfig(),
        docker,
        firewall,
        logger,
        clock,
        observer: { driftRepaired: (report) => drifts.push(report.family) },
        rulesetMonitor: () => monitor,
      })
    : undefined;
  const stop = async () => {
    await watch?.stop();
    await runner.stop();
    await daemon?.stop();
  };
  return { clock, records, kernel, runner, monitor, drifts, daemon, stop };
}

describe('self-healing (runner + sync + iptables reconciler, fake kernel)', () => {
  it('periodic checks write nothing while nothing drifted', async () => {
    const { clock, records, kernel, runner, stop } = setup();
    runner.request('startup');
    await clock.advance(200);
    expect(kernel.restores.map((r) => r.family)).toEqual([4, 6]);
    for (let i = 0; i < 5; i++) {
      runner.request('periodic');
      await clock.advance(2000);
    }
    expect(runner.syncs).toBe(6);
    expect(kernel.restores).toHaveLength(2);
    expect(records.filter((r) => r.msg === 'firewall in sync' && r.family === 'ipv4')).toHaveLength(5);
    await stop();
  });

  it('repairs an outside flush of DOCKER-USER once, logs what was missing, counts it, then writes nothing again', async () => {
    const { clock, records, kernel, runner, drifts, stop } = setup();
    runner.request('startup');
    await clock.advance(200);
    kernel.edit(4, (table) => {
      table.set('DOCKER-USER', []);
      table.set('DOCKFW-IN', []);
    });
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.restores.map((r) => r.family)).toEqual([4, 6, 4]);
    expect(kernel.chain(4, 'DOCKER-USER')).toEqual(['-j DOCKFW']);
    const drift = records.find((r) => r.msg === 'drift found: re-applied the rules');
    expect(drift).toMatchObject({ level: 40, family: 'ipv4', jumpFixed: true, reasons: ['periodic'] });
    expect(drift?.missing).toContain('DOCKFW-IN -m conntrack --ctdir REPLY -j RETURN');
    expect(drifts).toEqual([4]);
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.restores).toHaveLength(3);
    await stop();
  });

  it('puts a jump pushed below another rule back on top and re-creates deleted chains', async () => {
    const { clock, kernel, runner, stop } = setup();
    runner.request('startup');
    await clock.advance(200);
    kernel.edit(6, (table) => {
      table.set('DOCKER-USER', ['-s 2001:db8::1/128 -j ACCEPT', '-j DOCKFW']);
    });
    kernel.edit(4, (table) => {
      table.set('DOCKER-USER', []);
      table.delete('DOCKFW');
      table.delete('DOCKFW-IN');
    });
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.chain(6, 'DOCKER-USER')).toEqual(['-j DOCKFW', '-s 2001:db8::1/128 -j ACCEPT']);
    expect(kernel.chain(4, 'DOCKER-USER')).toEqual(['-j DOCKFW']);
    expect(kernel.chain(4, 'DOCKFW-IN')?.some((rule) => rule.includes('203.0.113.10'))).toBe(true);
    await stop();
  });

  it('the daemon’s ruleset watch repairs without a periodic check and ignores its own writes', async () => {
    const { clock, kernel, monitor, drifts, daemon, stop } = setup({ daemon: true });
    daemon?.start();
    // The start-up write shows up in the monitor; it is dockfw's own: no second sync.
    await clock.advance(10_000);
    expect(kernel.restores).toHaveLength(2);
    expect(daemon?.syncs).toBe(1);

    kernel.edit(4, (table) => table.set('DOCKER-USER', []));
    monitor.changed();
    await clock.advance(1000);
    expect(kernel.chain(4, 'DOCKER-USER')).toEqual(['-j DOCKFW']);
    expect(drifts).toEqual([4]);
    await clock.advance(30_000);
    expect(kernel.restores).toHaveLength(3);
    expect(daemon?.syncs).toBe(2);
    await stop();
  });

  it('a bare watch (no own-write filter) still cannot loop: its own writes cost one read', async () => {
    const { clock, kernel, runner, stop } = setup({ watch: true });
    runner.request('startup');
    await clock.advance(10_000);
    expect(kernel.restores).toHaveLength(2);
    expect(runner.syncs).toBe(2);
    await stop();
  });
});
