// The runner against real (harmless) processes: `sh` stands in for a tool.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommandError, commandRunner, onWriteSpawned } from './command.js';

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'runner-'));
});
afterEach(async () => {
  // The copy started after the last write waits on its stdin: wait for it, then stop every
  // process of this test (their command lines name its directory) by pid, children first.
  if (spareAfter !== undefined) await nextPid(spareAfter).catch(() => undefined);
  spareAfter = undefined;
  const pids = spawnSync('pgrep', ['-f', dir], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const pid of pids) {
    spawnSync('pkill', ['-KILL', '-P', pid]);
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  rmSync(dir, { recursive: true, force: true });
});
/** Set by a test whose runner keeps a copy waiting: the pid of the last write before it. */
let spareAfter: number | undefined;
const exists = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const lastPid = () => Number(readFileSync(join(dir, 'pid'), 'utf8'));

/** A "tool" that records and prints its pid, prints when it started (ms), then echoes its input. */
const tool = () => [
  '-c',
  `t=$(($(date +%s%N) / 1000000)); echo $$ > ${dir}/pid.t; mv ${dir}/pid.t ${dir}/pid; echo $$; echo $t; cat`,
];
const pidOf = (stdout: string) => Number(stdout.split('\n')[0]);
const startedAt = (stdout: string) => Number(stdout.split('\n')[1]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the tool's pid file names a process other than `than` (the spare has started). */
async function nextPid(than: number): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const pid = lastPid();
    if (Number.isInteger(pid) && pid > 0 && pid !== than) return pid;
    await sleep(10);
  }
  throw new Error('no spare started');
}

describe('warm writes', () => {
  it('hands the next write to a process started before it was asked for', async () => {
    const run = commandRunner('install sh', { warmWrites: ['sh'] });
    const first = await run('sh', tool(), 'one');
    expect(first.stdout.endsWith('one')).toBe(true);
    const spare = await nextPid(pidOf(first.stdout));
    await sleep(100);
    const askedAt = Date.now();
    const told: number[] = [];
    const stop = onWriteSpawned((pid) => told.push(pid));
    const second = await run('sh', tool(), 'two');
    stop();
    expect(second.stdout.endsWith('two')).toBe(true);
    expect(startedAt(second.stdout)).toBeLessThan(askedAt);
    // The write's pid is the waiting copy's, told when it is used (the ruleset watch's own commits).
    expect(told).toEqual([spare]);
    spareAfter = spare;
  });

  it('a program not named warm starts its own process for each write (iptables-restore: its lock)', async () => {
    for (const options of [{}, { warmWrites: ['ipset'] }]) {
      const run = commandRunner('install sh', options);
      await run('sh', tool(), 'one');
      await sleep(100);
      const askedAt = Date.now();
      const second = await run('sh', tool(), 'two');
      expect(startedAt(second.stdout)).toBeGreaterThanOrEqual(askedAt);
    }
  });

  it('does not use a waiting copy that died: the write starts its own', async () => {
    const run = commandRunner('install sh', { warmWrites: ['sh'] });
    const first = await run('sh', tool(), 'one');
    const spare = await nextPid(pidOf(first.stdout));
    spawnSync('pkill', ['-KILL', '-P', String(spare)]);
    process.kill(spare, 'SIGKILL');
    // Reaped (gone from the kernel's table) means this process has seen it exit.
    while (exists(spare)) await sleep(5);
    await sleep(10);
    const second = await run('sh', tool(), 'two');
    expect(second.stdout.endsWith('two')).toBe(true);
    expect(pidOf(second.stdout)).not.toBe(spare);
    spareAfter = pidOf(second.stdout);
  });

  it('a failing write through a waiting copy says how, as one started for it would', async () => {
    const run = commandRunner('install sh', { warmWrites: ['sh'] });
    const failing = [
      '-c',
      `echo $$ > ${dir}/pid.t; mv ${dir}/pid.t ${dir}/pid; cat > /dev/null; echo "Error: rejected by $$" >&2; exit 2`,
    ];
    const first = await run('sh', failing, 'one').catch((e: unknown) => e);
    expect((first as CommandError).message).toMatch(/exit 2.*Error: rejected/);
    const spare = await nextPid(Number(/rejected by (\d+)/.exec((first as CommandError).stderr)?.[1]));
    const error = await run('sh', failing, 'two').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).stderr).toContain(`Error: rejected by ${spare}`);
    expect((error as CommandError).missing).toBe(false);
    spareAfter = spare;
  });

  it('a missing tool is named as missing, and no copy is kept waiting for it', async () => {
    const run = commandRunner('install the tool', { warmWrites: ['no-such-tool-here'] });
    for (let i = 0; i < 2; i++) {
      const error = await run('no-such-tool-here', ['-f', '-'], 'x').catch((e: unknown) => e);
      expect((error as CommandError).missing).toBe(true);
      expect((error as CommandError).message).toContain('install the tool');
    }
  });

  it("hands a tool this process's environment without glibc's allocator settings", async () => {
    process.env.MALLOC_MMAP_THRESHOLD_ = '16384';
    process.env.DOCKFW_TEST_MARK = 'kept';
    try {
      const run = commandRunner('install env');
      const { stdout } = await run('env', []);
      expect(stdout).toContain('DOCKFW_TEST_MARK=kept');
      expect(stdout).not.toContain('MALLOC_');
    } finally {
      delete process.env.MALLOC_MMAP_THRESHOLD_;
      delete process.env.DOCKFW_TEST_MARK;
    }
  });
});
