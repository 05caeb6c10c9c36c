/**
 * Failing firewall tools on a real engine (Docker 28.5, iptables-legacy, so the
 * xtables lock applies): the tools missing, exiting 1, hanging, and the lock
 * held by another process. dockfw runs with a PATH of wrapper scripts
 * (test/host/tool-faults.ts) and a private XTABLES_LOCKFILE (the machine's own
 * /run/xtables.lock is never touched). For each fault a new labelled container
 * asks for a write that cannot happen; then:
 *   a clear log line and a failure in dockfw_syncs_total, retries with backoff,
 *   the rules already in place unchanged (no flush), the allowed client still
 *   through, the other still blocked, the new container closed by the
 *   catch-all, and no crash; once the fault clears, the next retry writes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, TEST_IMAGE, type TestHost } from '../host/index.js';
import { createToolFaults, type ToolFaults, type ToolMode } from '../host/tool-faults.js';
import { DockfwProcess, type LogRecord } from './dockfw-process.js';
import {
  ALLOWED,
  expectHeld,
  isAlive,
  LATE_ALLOWED,
  metric,
  OTHER,
  ownedIptables,
  reachers,
  waitForRecord,
} from './hardening-support.js';

const WEB_PORT = 8080;
const ERROR = 50;

describe('failing firewall tools: rules stay, blocked stays blocked, retried until it works', () => {
  let host: TestHost;
  let faults: ToolFaults;
  let dockfw: DockfwProcess;
  let lockHolder: ChildProcess | undefined;
  let nextPort = 8090;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'legacy' });
    faults = await createToolFaults();
    await host.runContainer({ name: 'web', ports: [`${WEB_PORT}:80`], labels: { 'dockfw.allow': ALLOWED } });
    dockfw = DockfwProcess.start(host, {
      PATH: faults.binDir,
      XTABLES_LOCKFILE: faults.lockFile,
      DOCKFW_BACKEND: 'iptables',
      DOCKFW_LOG_LEVEL: 'debug',
    });
    await dockfw.waitForLog('rules applied');
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
  });

  afterAll(async () => {
    releaseLock();
    await DockfwProcess.stopAll().catch(() => undefined);
    await faults?.setMode('ok').catch(() => undefined);
    await faults?.remove().catch(() => undefined);
    await host?.stop();
  });

  /** flock and its sleep form one process group: end both, so the lock is free. */
  function releaseLock(): void {
    const pid = lockHolder?.pid;
    lockHolder = undefined;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }

  /** Starts a labelled container while the tools fail; returns its host port. */
  async function startLate(name: string): Promise<number> {
    const port = nextPort++;
    await host.runContainer({ name, ports: [`${port}:80`], labels: { 'dockfw.allow': LATE_ALLOWED } });
    return port;
  }

  /** Clears the fault and checks the late container gets its rules from the next retry. */
  async function recover(from: number, latePort: number, failuresBefore: number): Promise<void> {
    await waitForRecord(
      dockfw,
      '"sync succeeded again"',
      (r) => r.msg === 'sync succeeded again',
      from,
      45_000,
    );
    expect(await reachers(host, latePort, [LATE_ALLOWED, OTHER])).toEqual([LATE_ALLOWED]);
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
    expect(await metric(host, 'dockfw_syncs_total', 'result="failure"')).toBeGreaterThan(failuresBefore);
  }

  /** The first failure's log line, then (when quick) a second attempt later than the first. */
  async function failureSeen(from: number, pattern: RegExp, timeoutMs = 20_000): Promise<LogRecord> {
    const line = await waitForRecord(
      dockfw,
      `an error matching ${pattern}`,
      (r) => r.level >= ERROR && pattern.test(String(r.error)),
      from,
      timeoutMs,
    );
    expect(line.failures).toBe(1);
    expect(line.retryInMs).toBe(1000);
    return line;
  }

  async function backoffSeen(from: number): Promise<void> {
    // Retries are logged once at debug, with a growing delay: 1 s, 2 s, 4 s …
    const retry = await waitForRecord(
      dockfw,
      'a second failed attempt',
      (r) => r.msg === 'sync failed again' && r.failures === 2,
      from,
    );
    expect(retry.retryInMs).toBe(2000);
  }

  it.each<[ToolMode, RegExp]>([
    ['fail', /failed \(exit 1\): .*injected failure/],
    ['fail-restore', /restore(?: --noflush -w)? failed \(exit 1\): .*injected failure/],
    ['missing', /not found/],
  ])('tools %s', async (mode, pattern) => {
    const rules = await ownedIptables(host);
    const failuresBefore = await metric(host, 'dockfw_syncs_total', 'result="failure"');
    const from = dockfw.records.length;
    // After a successful write dockfw has its next `ipset restore` waiting: it must not dodge the fault.
    expect(await faults.setMode(mode, dockfw.pid)).toBe(1);
    const latePort = await startLate(`late-${mode}`);
    const line = await failureSeen(from, pattern);
    console.log(`tools ${mode}: ${line.msg}: ${String(line.error)}`);
    await backoffSeen(from);
    await expectHeld(host, dockfw, rules, ownedIptables, WEB_PORT, latePort);
    // Still failing after the probes: the error was logged once, not on every retry.
    expect(dockfw.records.slice(from).filter((r) => r.level >= ERROR)).toHaveLength(1);
    const recovering = dockfw.records.length;
    await faults.setMode('ok', dockfw.pid);
    await recover(recovering, latePort, failuresBefore);
  });

  it('a hanging tool is timed out (30 s), rules stay', async () => {
    const rules = await ownedIptables(host);
    const failuresBefore = await metric(host, 'dockfw_syncs_total', 'result="failure"');
    const from = dockfw.records.length;
    expect(await faults.setMode('hang', dockfw.pid)).toBe(1);
    const started = Date.now();
    const latePort = await startLate('late-hang');
    // While the tool hangs, the rules in place keep working.
    await expectHeld(host, dockfw, rules, ownedIptables, WEB_PORT, latePort);
    const line = await failureSeen(from, /timed out after 30 s/, 45_000);
    console.log(`tools hang: ${line.msg} after ${Date.now() - started} ms: ${String(line.error)}`);
    // The retry comes 1 s later: let it find the tool working again.
    await faults.setMode('ok', dockfw.pid);
    await recover(from, latePort, failuresBefore);
  });

  it('the xtables lock held by another process: chain writes time out, rules stay, written once it is free', async () => {
    const rules = await ownedIptables(host);
    const failuresBefore = await metric(host, 'dockfw_syncs_total', 'result="failure"');
    const from = dockfw.records.length;
    // Another iptables user holds dockfw's (private) lock file.
    lockHolder = spawn('flock', ['--exclusive', faults.lockFile, 'sleep', '60'], {
      stdio: 'ignore',
      detached: true,
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    // A container on a new network: its bridge goes into the chains, which take the
    // lock (a container's verdicts go into the sets, which do not).
    await host.docker(['network', 'create', 'late-net']);
    const latePort = nextPort++;
    await host.docker([
      'run',
      '-d',
      '--name',
      'late-lock',
      '--network',
      'late-net',
      '-p',
      `${latePort}:80`,
      '-l',
      `dockfw.allow=${LATE_ALLOWED}`,
      TEST_IMAGE,
    ]);
    const line = await failureSeen(from, /restore --noflush -w timed out after 30 s/, 45_000);
    console.log(`xtables lock: ${line.msg} after ${Date.now() - started} ms: ${String(line.error)}`);
    // The chains as they were, the old container as it was, the new one never open to others.
    expect(isAlive(dockfw.pid)).toBe(true);
    expect(await ownedIptables(host)).toEqual(rules);
    expect(await reachers(host, WEB_PORT, [ALLOWED, OTHER])).toEqual([ALLOWED]);
    expect(await reachers(host, latePort, [LATE_ALLOWED, OTHER])).not.toContain(OTHER);
    releaseLock();
    await recover(from, latePort, failuresBefore);
  });
});
