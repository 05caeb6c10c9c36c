import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../observe/memory-logger.js';
import { FakeClock } from './fake-clock.js';
import {
  concernsDockfw,
  findOnPath,
  isObjectLine,
  parseGeneration,
  type MonitorExit,
  type MonitorProcess,
} from './nft-monitor.js';
import { inInitialPidNamespace, OwnWriters } from './own-writers.js';
import { RulesetWatch } from './ruleset-watch.js';

/** The kernel's generation counter (one netns for the whole file; tests only need it to move on). */
let generation = 100;
/** The pid of the write child dockfw started in these tests, and someone else's. */
const OWN_PID = 4242;
const FOREIGN_PID = 777;

/** A monitor process the test feeds lines to and ends at will. */
class FakeMonitor implements MonitorProcess {
  private queue: string[] = [];
  private notify: (() => void) | undefined;
  private ended: MonitorExit | undefined;
  private resolveExit!: (exit: MonitorExit) => void;
  readonly exited = new Promise<MonitorExit>((resolve) => (this.resolveExit = resolve));
  stopped = false;

  constructor(private readonly startError?: NodeJS.ErrnoException) {
    if (startError) this.exit({ code: null, signal: null, error: startError, stderr: '' });
  }

  readonly lines: AsyncIterable<string> = {
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<string>> => {
        for (;;) {
          const line = this.queue.shift();
          if (line !== undefined) return { value: line, done: false };
          if (this.ended) {
            if (this.startError) throw this.startError;
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (this.notify = resolve));
        }
      },
    }),
  };

  emit(...lines: string[]): void {
    this.queue.push(...lines);
    this.notify?.();
  }

  /** One transaction: its lines, then the generation line naming the process that committed. */
  commit(lines: string[], pid = FOREIGN_PID, name = 'nft'): void {
    this.emit(...lines, `# new generation ${++generation} by process ${pid} (${name})`);
  }

  exit(exit: MonitorExit): void {
    this.ended ??= exit;
    this.resolveExit(exit);
    this.notify?.();
  }

  stop(): void {
    this.stopped = true;
    this.exit({ code: null, signal: 'SIGTERM', stderr: '' });
  }
}

function setup(options: { failures?: (NodeJS.ErrnoException | 'exit')[] } = {}) {
  const clock = new FakeClock();
  const { logger, records } = memoryLogger();
  const requests: number[] = [];
  const monitors: FakeMonitor[] = [];
  const failures = [...(options.failures ?? [])];
  const watch = new RulesetWatch({
    spawn: () => {
      const failure = failures.shift();
      const monitor = new FakeMonitor(failure === undefined || failure === 'exit' ? undefined : failure);
      if (failure === 'exit')
        monitor.exit({ code: 1, signal: null, stderr: 'Error: Operation not permitted\n' });
      monitors.push(monitor);
      return monitor;
    },
    runner: { request: () => requests.push(clock.now()) },
    logger,
    clock,
    ownWriter: (pid) => pid === OWN_PID,
    debounceMs: 100,
    maxDelayMs: 500,
    retryInitialMs: 1000,
    retryMaxMs: 4000,
    stableMs: 2000,
    upMs: 250,
  });
  const current = () => monitors[monitors.length - 1] as FakeMonitor;
  return { clock, records, requests, monitors, watch, current };
}

const FLUSH_DOCKER_USER = 'delete rule ip filter DOCKER-USER handle 5';

describe('concernsDockfw (nft monitor lines)', () => {
  it.each([
    ['delete rule ip filter DOCKER-USER handle 5', true],
    ['insert rule ip filter DOCKER-USER counter packets 0 bytes 0 jump DOCKFW', true],
    ['delete rule ip6 filter FORWARD handle 12', true],
    ['flush chain ip filter DOCKFW-IN', true],
    ['delete chain ip filter DOCKFW', true],
    ['add rule ip filter DOCKFW-IN ip daddr 172.17.0.2 tcp dport 80 return', true],
    ['delete table ip filter', true],
    ['flush table ip filter', true],
    ['add element inet dockfw allowed4 { 172.17.0.2 . tcp . 80 . 203.0.113.10 }', true],
    ['delete rule inet dockfw forward handle 9', true],
    ['delete table inet dockfw', true],
    ['something this parser never saw', true],
    ['add rule ip nat DOCKER iifname != "docker0" tcp dport 8080 dnat to 172.17.0.2:80', false],
    ['add rule ip filter DOCKER-FORWARD oifname "docker0" accept', false],
    ['create chain ip filter DOCKER-ISOLATION-STAGE-1', false],
    [
      'add element ip docker-bridges filter-forward-in-jumps { "br-1" : jump filter-forward-in__br-1 }',
      false,
    ],
    ['add set ip docker-bridges some-set { type ipv4_addr; }', false],
    ['# new generation 5 by process 10528 (nft)', false],
    ['', false],
  ])('%s → %s', (line, expected) => {
    expect(concernsDockfw(line)).toBe(expected);
  });
});

describe('RulesetWatch', () => {
  it('asks for one sync once a burst of relevant changes has settled', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    for (let i = 0; i < 5; i++) {
      current().commit([FLUSH_DOCKER_USER]);
      await clock.advance(50);
    }
    expect(requests).toEqual([]);
    await clock.advance(100);
    // 100 ms after the last change (at 200 ms): one request.
    expect(requests).toEqual([300]);
    await watch.stop();
  });

  it('ignores changes to tables and chains that are not dockfw’s', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().commit(
      [
        'add rule ip nat DOCKER tcp dport 8080 dnat to 172.17.0.2:80',
        'add rule ip filter DOCKER-FORWARD oifname "docker0" accept',
      ],
      1,
      'dockerd',
    );
    current().commit(['add chain ip filter DOCKER-ISOLATION-STAGE-1'], 1, 'dockerd');
    await clock.advance(1000);
    expect(requests).toEqual([]);
    expect(watch.changesSeen).toBe(0);
    await watch.stop();
  });

  it('a steady stream of changes still asks every maxDelayMs', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    for (let i = 0; i < 24; i++) {
      current().commit([FLUSH_DOCKER_USER]);
      await clock.advance(50);
    }
    // Changes from 0 to 1150 ms, never 100 ms quiet: asked at 500 and 1000.
    expect(requests).toEqual([500, 1000]);
    await watch.stop();
  });

  it('restarts a dead monitor at once, then with capped backoff; logs once; looks at each exit', async () => {
    const { clock, records, requests, monitors, watch } = setup({
      failures: ['exit', 'exit', 'exit', 'exit', 'exit'],
    });
    watch.start();
    await clock.advance(0);
    // Attempts at 0, at once again, then after 1000, 2000, 4000, 4000 (capped): the sixth runs at 11000.
    expect(monitors).toHaveLength(2);
    await clock.advance(1000 + 2000 + 4000 + 4000);
    expect(monitors).toHaveLength(6);
    // A look at every exit; none after a restart that died before it was up.
    expect(requests).toEqual([0, 0, 1000, 3000, 7000]);
    const down = records.filter((r) => r.msg.startsWith('nft monitor stopped'));
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({
      level: 40,
      code: 1,
      error: 'Error: Operation not permitted',
      retryInMs: 0,
    });
    // The sixth stays up: one look once it has subscribed, reported back once it has been stable a while.
    await clock.advance(250);
    expect(requests).toEqual([0, 0, 1000, 3000, 7000, 11_250]);
    await clock.advance(2000);
    expect(records.filter((r) => r.msg.startsWith('watching the nftables ruleset'))).toHaveLength(1);
    expect(watch.watching).toBe(true);
    await watch.stop();
  });

  it('a monitor that exits asks for a check at once, is restarted at once, and asks again once up', async () => {
    const { clock, requests, monitors, watch, current } = setup();
    watch.start();
    await clock.advance(10_000);
    expect(requests).toEqual([]);
    current().exit({ code: null, signal: 'SIGSEGV', stderr: 'Memory allocation failure\n' });
    await clock.advance(0);
    expect(requests).toEqual([10_000]);
    expect(monitors).toHaveLength(2);
    await clock.advance(250);
    expect(requests).toEqual([10_000, 10_250]);
    // It keeps working: the new one's changes are followed as before.
    current().commit([FLUSH_DOCKER_USER]);
    await clock.advance(100);
    expect(requests).toEqual([10_000, 10_250, 10_350]);
    await watch.stop();
  });

  it('a monitor that worked for a while and dies is restarted at once again (backoff reset)', async () => {
    const { clock, requests, monitors, watch, current } = setup({ failures: ['exit', 'exit'] });
    watch.start();
    await clock.advance(0); // 0 and 0 died; the third waits 1000
    await clock.advance(1000); // third attempt runs
    expect(monitors).toHaveLength(3);
    await clock.advance(10_000);
    current().exit({ code: 0, signal: null, stderr: '' });
    await clock.advance(0);
    expect(monitors).toHaveLength(4);
    expect(requests.slice(-2)).toEqual([1250, 11_000]);
    await watch.stop();
  });

  it('without nft installed, says so once and stops trying', async () => {
    const missing = Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' });
    const { clock, records, requests, monitors, watch } = setup({ failures: [missing] });
    watch.start();
    await clock.advance(60_000);
    expect(monitors).toHaveLength(1);
    expect(requests).toEqual([]);
    expect(records.filter((r) => r.msg.startsWith('nft not found'))).toHaveLength(1);
    await watch.stop();
  });

  it('stop ends the monitor and a pending debounce asks nothing more', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    const monitor = current();
    monitor.commit([FLUSH_DOCKER_USER]);
    await clock.advance(10);
    await watch.stop();
    await clock.advance(1000);
    expect(monitor.stopped).toBe(true);
    expect(requests).toEqual([]);
  });
});

describe('RulesetWatch: commits, not lines', () => {
  it('waits for the end of the transaction, then asks once for all its lines', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().emit(FLUSH_DOCKER_USER, 'delete chain ip filter DOCKFW-IN');
    await clock.advance(1000);
    expect(requests).toEqual([]);
    current().emit(`# new generation ${++generation} by process ${FOREIGN_PID} (iptables-restor)`);
    await clock.advance(100);
    expect(requests).toEqual([1100]);
    expect(watch.changesSeen).toBe(1);
    await watch.stop();
  });

  it('a blind commit (a generation line and nothing else) asks for a check', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    // Someone's `add element inet dockfw …` that nft 1.0.6 did not print.
    current().commit([]);
    await clock.advance(100);
    expect(requests).toEqual([100]);
    await watch.stop();
  });

  it('a commit whose lines only concern other tables is ignored, whoever made it', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().commit(['add rule ip nat DOCKER tcp dport 8080 dnat to 172.17.0.2:80'], 1, 'dockerd');
    current().commit(['add element ip docker-bridges filter-forward-in-jumps { "br-1" : jump x }']);
    await clock.advance(1000);
    expect(requests).toEqual([]);
    await watch.stop();
  });

  it('events the monitor says it lost (its socket buffer overflowed) ask for a check', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().emit('# ERROR: We lost some netlink events!');
    await clock.advance(100);
    expect(requests).toEqual([100]);
    await watch.stop();
  });

  it('a generation skipped (commits the monitor missed) asks for a check', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().commit(['add rule ip nat DOCKER tcp dport 8080 dnat to 172.17.0.2:80'], 1, 'dockerd');
    generation += 3;
    current().commit(['add rule ip nat DOCKER tcp dport 8081 dnat to 172.17.0.3:80'], 1, 'dockerd');
    await clock.advance(100);
    expect(requests).toEqual([100]);
    await watch.stop();
  });
});

describe('RulesetWatch and dockfw’s own writes', () => {
  it('skips a commit made by dockfw’s own writer, blind or not', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().commit([FLUSH_DOCKER_USER, 'add rule ip filter DOCKFW-IN return'], OWN_PID, 'iptables-restor');
    current().commit([], OWN_PID, 'nft');
    await clock.advance(1000);
    expect(requests).toEqual([]);
    expect(watch.ownCommitsSkipped).toBe(2);
    await watch.stop();
  });

  it('passes on a foreign flush right after dockfw’s own write (no grace period)', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    current().commit(['add rule inet dockfw forward ip saddr 203.0.113.10 accept'], OWN_PID);
    await clock.advance(1);
    current().commit(['flush table inet dockfw']);
    await clock.advance(100);
    expect(requests).toEqual([101]);
    expect(watch.ownCommitsSkipped).toBe(1);
    // Even printed in the same burst, before dockfw's own generation line.
    current().emit('add element inet dockfw allowed4 { 172.17.0.2 . tcp . 80 . 203.0.113.10 }');
    current().emit(`# new generation ${++generation} by process ${OWN_PID} (nft)`);
    current().commit([]);
    await clock.advance(100);
    expect(requests).toEqual([101, 201]);
    await watch.stop();
  });

  it('without a way to tell its own writers, every relevant commit is checked (reads only, cannot loop)', async () => {
    const clock = new FakeClock();
    const { logger } = memoryLogger();
    const requests: number[] = [];
    const monitor = new FakeMonitor();
    const watch = new RulesetWatch({
      spawn: () => monitor,
      runner: { request: () => requests.push(clock.now()) },
      logger,
      clock,
    });
    watch.start();
    await clock.advance(0);
    monitor.commit([FLUSH_DOCKER_USER], OWN_PID);
    await clock.advance(100);
    expect(requests).toEqual([100]);
    await watch.stop();
  });
});

describe('monitor helpers', () => {
  it('parses generation lines', () => {
    expect(parseGeneration('# new generation 5 by process 10528 (nft)')).toEqual({
      id: 5,
      pid: 10528,
      name: 'nft',
    });
    expect(parseGeneration('# new generation 12 by process 31 (iptables-restor)')?.pid).toBe(31);
    expect(parseGeneration('add table inet dockfw')).toBeUndefined();
    expect(isObjectLine('add table inet dockfw')).toBe(true);
    expect(isObjectLine('# new generation 5 by process 1 (nft)')).toBe(false);
    expect(isObjectLine('  ')).toBe(false);
  });

  it('own writers: a pid counts once, and only the last few are kept', () => {
    const writers = new OwnWriters(2);
    writers.add(10);
    writers.add(11);
    writers.add(12);
    expect(writers.take(10)).toBe(false);
    expect(writers.take(11)).toBe(true);
    expect(writers.take(11)).toBe(false);
    expect(writers.take(12)).toBe(true);
  });

  it('compares pids only in the initial pid namespace', () => {
    expect(inInitialPidNamespace(() => 'pid:[4026531836]')).toBe(true);
    expect(inInitialPidNamespace(() => 'pid:[4026532301]')).toBe(false);
    expect(
      inInitialPidNamespace(() => {
        throw new Error('EACCES');
      }),
    ).toBe(false);
  });

  it('finds programs on PATH', () => {
    expect(findOnPath('sh', '/nonexistent:/bin:/usr/bin')).toMatch(/\/sh$/);
    expect(findOnPath('surely-not-a-program-here', '/bin:/usr/bin')).toBeUndefined();
  });
});
