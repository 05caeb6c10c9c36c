// Self-healing with the real runner, sync and each backend's reconciler against
// a stateful fake of the kernel (iptables tables, nftables' table inet dockfw):
// checks that find nothing write nothing, outside damage is repaired once and
// logged as drift, and the ruleset watch cannot feed on dockfw's own writes.
import { describe, expect, it } from 'vitest';
import type { FirewallSync } from '../backends/firewall.js';
import { IptablesReconciler } from '../backends/iptables/reconcile.js';
import { FakeNftKernel } from '../backends/nftables/fake-nft-kernel.js';
import { NftablesFirewall } from '../backends/nftables/firewall.js';
import { defaultConfig } from '../config/config.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import { Daemon } from './daemon.js';
import { FakeClock } from './fake-clock.js';
import { FakeIptablesKernel } from '../backends/iptables/fake-iptables-kernel.js';
import type { MonitorExit, MonitorProcess } from './nft-monitor.js';
import { RulesetWatch } from './ruleset-watch.js';
import { SyncRunner } from './runner.js';
import { createSync } from './sync.js';

/** The pid the fake kernel reports for dockfw's own restores, and for anyone else's change. */
const OWN_WRITER = 4242;
const SOMEONE_ELSE = 777;

/** `nft monitor` as the kernel would run it: a transaction per write, never exits on its own. */
class KernelMonitor implements MonitorProcess {
  private pending: string[] = [];
  private generation = 1;
  private wake: (() => void) | undefined;
  private done = false;
  readonly exited: Promise<MonitorExit>;
  private resolveExit!: (exit: MonitorExit) => void;

  constructor() {
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  /** A commit by process `pid`: its line, then the generation line. */
  changed(pid = SOMEONE_ELSE): void {
    this.pending.push(
      'delete rule ip filter DOCKER-USER handle 7',
      `# new generation ${++this.generation} by process ${pid} (iptables-restor)`,
    );
    this.wake?.();
  }

  readonly lines: AsyncIterable<string> = {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<string>> => {
        for (;;) {
          const line = this.pending.shift();
          if (line !== undefined) return { value: line, done: false };
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

/** A fake kernel: it calls `onWrite` after each write dockfw makes. */
interface WatchedKernel {
  onWrite: (() => void) | undefined;
}

function iptablesBackend() {
  const kernel = new FakeIptablesKernel('nft');
  const firewall = new IptablesReconciler({ run: kernel.run, legacyTableNames: () => Promise.resolve('') });
  return { kernel, firewall };
}

function nftablesBackend() {
  const kernel = new FakeNftKernel();
  return { kernel, firewall: new NftablesFirewall({ run: kernel.run }) };
}

function setup(options: { watch?: boolean; daemon?: boolean } = {}) {
  const made = iptablesBackend();
  return { ...wire(made.kernel, made.firewall, options), kernel: made.kernel };
}

function setupNft(options: { watch?: boolean; daemon?: boolean } = {}) {
  const made = nftablesBackend();
  return { ...wire(made.kernel, made.firewall, options), kernel: made.kernel };
}

function wire(kernel: WatchedKernel, firewall: FirewallSync, options: { watch?: boolean; daemon?: boolean }) {
  const clock = new FakeClock();
  const { logger, records } = memoryLogger();
  const docker = new FakeDockerClient();
  docker.containers.set(
    WEB_ID,
    inspectJson({ id: WEB_ID, name: 'web', labels: { 'dockfw.allow': '203.0.113.10' } }),
  );
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
  kernel.onWrite = () => monitor.changed(OWN_WRITER);
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
        ownWriter: (pid) => pid === OWN_WRITER,
      })
    : undefined;
  const stop = async () => {
    await watch?.stop();
    await runner.stop();
    await daemon?.stop();
  };
  return { clock, records, runner, monitor, drifts, daemon, stop };
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
    // The sets were filled once (a swap per family), then only read.
    expect(kernel.ipset.batches).toHaveLength(2);
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
    expect(kernel.chain(4, 'DOCKFW-IN')).toContain(
      '-m set --match-set dockfw-allowed4 dst,dst,src -j RETURN',
    );
    expect(kernel.ipset.elements('dockfw-allowed4')).toContain('172.17.0.2,tcp:80,203.0.113.10');
    await stop();
  });

  it('the daemon’s ruleset watch repairs without a periodic check and skips commits of its own writers', async () => {
    const { clock, kernel, monitor, drifts, daemon, stop } = setup({ daemon: true });
    daemon?.start();
    // The start-up write shows up in the monitor, made by dockfw's own writer: no second sync.
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

  it('an outside flush landing right after dockfw’s own write is repaired by the watch', async () => {
    const { clock, kernel, monitor, drifts, daemon, stop } = setup({ daemon: true });
    daemon?.start();
    await clock.advance(10_000);
    expect(kernel.restores).toHaveLength(2);
    // The next write of dockfw's (a repair) is followed at once by someone flushing DOCKER-USER again.
    let flushAfterWrite = true;
    kernel.onWrite = () => {
      monitor.changed(OWN_WRITER);
      if (!flushAfterWrite) return;
      flushAfterWrite = false;
      kernel.edit(4, (table) => table.set('DOCKER-USER', []));
      monitor.changed(SOMEONE_ELSE);
    };
    kernel.edit(4, (table) => table.set('DOCKER-USER', []));
    monitor.changed();
    await clock.advance(1000);
    expect(kernel.chain(4, 'DOCKER-USER')).toEqual(['-j DOCKFW']);
    expect(drifts).toEqual([4, 4]);
    // Then quiet: its own repair is not read again.
    await clock.advance(30_000);
    expect(kernel.restores).toHaveLength(4);
    expect(daemon?.syncs).toBe(3);
    await stop();
  });

  it('a bare watch (no own-writer pids) still cannot loop: its own writes cost one read', async () => {
    const { clock, kernel, runner, stop } = setup({ watch: true });
    runner.request('startup');
    await clock.advance(10_000);
    expect(kernel.restores).toHaveLength(2);
    expect(runner.syncs).toBe(2);
    await stop();
  });
});

describe('self-healing (runner + sync + nftables firewall, fake kernel)', () => {
  const WEB_SOURCE = '203.0.113.10';
  const allowsWeb = (elements: string[] | undefined) => elements?.some((e) => e.endsWith(` . ${WEB_SOURCE}`));

  it('periodic checks write nothing while nothing drifted', async () => {
    const { clock, records, kernel, runner, stop } = setupNft();
    runner.request('startup');
    await clock.advance(200);
    expect(kernel.writes).toHaveLength(1);
    for (let i = 0; i < 5; i++) {
      runner.request('periodic');
      await clock.advance(2000);
    }
    expect(runner.syncs).toBe(6);
    expect(kernel.writes).toHaveLength(1);
    expect(kernel.rejected).toEqual([]);
    expect(records.filter((r) => r.msg === 'firewall in sync' && r.family === 'ipv4')).toHaveLength(5);
    await stop();
  });

  it('repairs an outside flush of the forward chain once, logs what was missing, counts it, then writes nothing again', async () => {
    const { clock, records, kernel, runner, drifts, stop } = setupNft();
    runner.request('startup');
    await clock.advance(200);
    const rules = kernel.chain('forward');
    expect(rules?.length).toBeGreaterThan(3);
    kernel.outside('flush chain inet dockfw forward\n');
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.writes).toHaveLength(2);
    expect(kernel.chain('forward')).toEqual(rules);
    const drift = records.find((r) => r.msg === 'drift found: re-applied the rules');
    expect(drift).toMatchObject({ level: 40, family: 'ipv4', reasons: ['periodic'] });
    expect(drift?.missing).toContain('rule dockfw catch-all');
    expect(drifts).toEqual([4]);
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.writes).toHaveLength(2);
    expect(kernel.rejected).toEqual([]);
    await stop();
  });

  it('takes out a foreign element that opens a port, and puts back a deleted one, writing only elements', async () => {
    const { clock, kernel, runner, drifts, stop } = setupNft();
    runner.request('startup');
    await clock.advance(200);
    const allowed = kernel.elements('allowed4');
    expect(allowsWeb(allowed)).toBe(true);
    const guarded = kernel.elements('guarded4') ?? [];
    const web = guarded[0] ?? '';
    kernel.outside(`add element inet dockfw allowed4 { ${web} . 198.51.100.7 }\n`);
    kernel.outside(`delete element inet dockfw guarded4 { ${web} }\n`);
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.elements('allowed4')).toEqual(allowed);
    expect(kernel.elements('guarded4')).toEqual(guarded);
    expect(kernel.writes.at(-1)).toMatch(/^delete element inet dockfw allowed4 /);
    expect(drifts).toEqual([4]);
    expect(kernel.rejected).toEqual([]);
    await stop();
  });

  it('rewrites the table around a foreign rule, and re-creates a deleted table', async () => {
    const { clock, kernel, runner, drifts, stop } = setupNft();
    runner.request('startup');
    await clock.advance(200);
    const rules = kernel.chain('forward');
    kernel.outside(
      'insert rule inet dockfw forward ip daddr . meta l4proto . th dport @guarded4 accept comment "opens"\n',
    );
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.chain('forward')).toEqual(rules);
    kernel.outside('delete table inet dockfw\n');
    expect(kernel.exists).toBe(false);
    runner.request('periodic');
    await clock.advance(200);
    expect(kernel.chain('forward')).toEqual(rules);
    expect(allowsWeb(kernel.elements('allowed4'))).toBe(true);
    expect(kernel.writes).toHaveLength(3);
    expect(drifts).toEqual([4, 4]);
    await stop();
  });

  it('a write the kernel refuses (the table deleted between read and write) falls back to the whole table', async () => {
    const { clock, kernel, runner, stop } = setupNft();
    runner.request('startup');
    await clock.advance(200);
    const guarded = kernel.elements('guarded4') ?? [];
    kernel.outside(`delete element inet dockfw guarded4 { ${guarded[0] ?? ''} }\n`);
    // Someone deletes the table right after dockfw's read: its element write is refused.
    let raced = false;
    const apply = kernel.apply.bind(kernel);
    kernel.apply = (payload: string) => {
      if (!raced && payload.startsWith('add element')) {
        raced = true;
        apply('delete table inet dockfw\n');
      }
      apply(payload);
    };
    runner.request('periodic');
    await clock.advance(200);
    expect(raced).toBe(true);
    expect(kernel.rejected).toHaveLength(1);
    expect(kernel.rejected[0]).toMatch(/^add element inet dockfw guarded4 /);
    expect(kernel.writes.at(-1)).toMatch(/^add table inet dockfw\ndelete table inet dockfw\n/);
    expect(kernel.elements('guarded4')).toEqual(guarded);
    await stop();
  });

  it('the daemon’s ruleset watch repairs without a periodic check and skips commits of its own writers', async () => {
    const { clock, kernel, monitor, drifts, daemon, stop } = setupNft({ daemon: true });
    daemon?.start();
    await clock.advance(10_000);
    expect(kernel.writes).toHaveLength(1);
    expect(daemon?.syncs).toBe(1);

    const rules = kernel.chain('published');
    kernel.outside('flush chain inet dockfw published\n');
    monitor.changed();
    await clock.advance(1000);
    expect(kernel.chain('published')).toEqual(rules);
    expect(drifts).toEqual([4]);
    await clock.advance(30_000);
    expect(kernel.writes).toHaveLength(2);
    expect(daemon?.syncs).toBe(2);
    await stop();
  });

  it('an outside flush landing right after dockfw’s own write is repaired by the watch', async () => {
    const { clock, kernel, monitor, drifts, daemon, stop } = setupNft({ daemon: true });
    daemon?.start();
    await clock.advance(10_000);
    expect(kernel.writes).toHaveLength(1);
    const rules = kernel.chain('forward');
    let flushAfterWrite = true;
    kernel.onWrite = () => {
      monitor.changed(OWN_WRITER);
      if (!flushAfterWrite) return;
      flushAfterWrite = false;
      kernel.outside('flush chain inet dockfw forward\n');
      monitor.changed(SOMEONE_ELSE);
    };
    kernel.outside('flush chain inet dockfw forward\n');
    monitor.changed();
    await clock.advance(1000);
    expect(kernel.chain('forward')).toEqual(rules);
    expect(drifts).toEqual([4, 4]);
    await clock.advance(30_000);
    expect(kernel.writes).toHaveLength(3);
    expect(daemon?.syncs).toBe(3);
    await stop();
  });

  it('a bare watch (no own-writer pids) still cannot loop: its own writes cost one read', async () => {
    const { clock, kernel, runner, stop } = setupNft({ watch: true });
    runner.request('startup');
    await clock.advance(10_000);
    expect(kernel.writes).toHaveLength(1);
    expect(runner.syncs).toBe(2);
    await stop();
  });
});
