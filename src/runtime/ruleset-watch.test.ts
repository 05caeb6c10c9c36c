import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../observe/memory-logger.js';
import { FakeClock } from './fake-clock.js';
import { concernsDockfw, type MonitorExit, type MonitorProcess } from './nft-monitor.js';
import { RulesetWatch } from './ruleset-watch.js';

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
    debounceMs: 100,
    maxDelayMs: 500,
    retryInitialMs: 1000,
    retryMaxMs: 4000,
    stableMs: 2000,
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
      current().emit(FLUSH_DOCKER_USER);
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
    current().emit(
      'add rule ip nat DOCKER tcp dport 8080 dnat to 172.17.0.2:80',
      'add rule ip filter DOCKER-FORWARD oifname "docker0" accept',
      '# new generation 7 by process 1 (dockerd)',
    );
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
      current().emit(FLUSH_DOCKER_USER);
      await clock.advance(50);
    }
    // Changes from 0 to 1150 ms, never 100 ms quiet: asked at 500 and 1000.
    expect(requests).toEqual([500, 1000]);
    await watch.stop();
  });

  it('restarts a dead monitor with capped backoff, logs once, and looks again after each gap', async () => {
    const { clock, records, requests, monitors, watch } = setup({
      failures: ['exit', 'exit', 'exit', 'exit', 'exit'],
    });
    watch.start();
    // Attempts at 0, then after 1000, 2000, 4000, 4000 (capped): the sixth runs.
    await clock.advance(1000 + 2000 + 4000 + 4000 + 4000);
    expect(monitors).toHaveLength(6);
    expect(requests).toEqual([1000, 3000, 7000, 11000, 15000]);
    const down = records.filter((r) => r.msg.startsWith('nft monitor stopped'));
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({
      level: 40,
      code: 1,
      error: 'Error: Operation not permitted',
      retryInMs: 1000,
    });
    // The sixth stays up: reported back once it has been stable a while.
    await clock.advance(2000);
    expect(records.filter((r) => r.msg.startsWith('watching the nftables ruleset'))).toHaveLength(1);
    expect(watch.watching).toBe(true);
    await watch.stop();
  });

  it('a monitor that worked for a while and dies is retried from the initial backoff', async () => {
    const { clock, requests, monitors, watch, current } = setup({ failures: ['exit', 'exit'] });
    watch.start();
    await clock.advance(1000 + 2000); // third attempt runs
    expect(monitors).toHaveLength(3);
    await clock.advance(10_000);
    current().exit({ code: 0, signal: null, stderr: '' });
    await clock.advance(999);
    expect(monitors).toHaveLength(3);
    await clock.advance(1);
    expect(monitors).toHaveLength(4);
    expect(requests.at(-1)).toBe(14_000);
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
    monitor.emit(FLUSH_DOCKER_USER);
    await clock.advance(10);
    await watch.stop();
    await clock.advance(1000);
    expect(monitor.stopped).toBe(true);
    expect(requests).toEqual([]);
  });
});

describe('RulesetWatch and dockfw’s own writes', () => {
  it('ignores changes seen during (and just after) a sync that wrote, passes on those of a sync that did not', async () => {
    const { clock, requests, watch, current } = setup();
    watch.start();
    await clock.advance(0);
    await watch.whileWriting(
      async () => {
        current().emit(FLUSH_DOCKER_USER);
        await clock.advance(20);
        return true;
      },
      (wrote) => wrote,
    );
    current().emit(FLUSH_DOCKER_USER); // monitor lag: still ours
    await clock.advance(1000);
    expect(requests).toEqual([]);

    current().emit(FLUSH_DOCKER_USER); // later: someone else
    await clock.advance(1000);
    expect(requests).toHaveLength(1);

    await watch.whileWriting(
      async () => {
        current().emit(FLUSH_DOCKER_USER);
        await clock.advance(20);
        return false;
      },
      (wrote) => wrote,
    );
    await clock.advance(1000);
    expect(requests).toHaveLength(2);
    await watch.stop();
  });
});
