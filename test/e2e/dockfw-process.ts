/**
 * dockfw as a real process inside a test host's engine namespace, built from
 * dist/ (run `npm run build` first). Its JSON log lines are kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { TestHost } from '../host/index.js';
import { REPO_ROOT } from '../host/provisioned.js';

/** The build under test; DOCKFW_E2E_MAIN points the suite at another one (e.g. a mutant). */
export const DOCKFW_MAIN = process.env.DOCKFW_E2E_MAIN ?? path.join(REPO_ROOT, 'dist', 'cli', 'main.js');

export interface LogRecord {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

function requireBuild(): void {
  if (!existsSync(DOCKFW_MAIN)) throw new Error(`${DOCKFW_MAIN} is missing: run \`npm run build\` first`);
}

function dockfwEnv(host: TestHost, env: Record<string, string>): Record<string, string> {
  return { PATH: host.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', DOCKER_HOST: host.dockerHost, ...env };
}

export class DockfwProcess {
  /** Every process started in this worker, so a failed test cannot leak one. */
  private static readonly started = new Set<DockfwProcess>();

  /** Stops every dockfw this worker started and has not stopped yet. */
  static async stopAll(): Promise<void> {
    await Promise.all([...DockfwProcess.started].map((p) => p.stop().catch(() => undefined)));
  }

  readonly records: LogRecord[] = [];
  private stderr = '';
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(private readonly child: ChildProcess) {
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        try {
          this.records.push(JSON.parse(line) as LogRecord);
        } catch {
          this.records.push({ level: 60, msg: `unparsable output: ${line}` });
        }
      }
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        DockfwProcess.started.delete(this);
        resolve({ code, signal });
      }),
    );
    DockfwProcess.started.add(this);
  }

  /** Starts `dockfw run` in the host's engine namespace. */
  static start(host: TestHost, env: Record<string, string> = {}): DockfwProcess {
    requireBuild();
    const child = spawn(
      'nsenter',
      [`--net=/var/run/netns/${host.engineNs}`, '--', process.execPath, DOCKFW_MAIN, 'run'],
      { env: dockfwEnv(host, env), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return new DockfwProcess(child);
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('dockfw did not start');
    return this.child.pid;
  }

  /** Log records with this message. */
  logged(msg: string): LogRecord[] {
    return this.records.filter((r) => r.msg === msg);
  }

  /** Everything it printed, for failure messages. */
  output(): string {
    return `${this.records.map((r) => JSON.stringify(r)).join('\n')}\n${this.stderr}`;
  }

  async waitForLog(msg: string, timeoutMs = 20_000, count = 1): Promise<LogRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logged(msg);
      if (found.length >= count) return found[count - 1] as LogRecord;
      if (Date.now() > deadline)
        throw new Error(`dockfw did not log "${msg}" within ${timeoutMs} ms:\n${this.output()}`);
      await sleep(25);
    }
  }

  /** SIGTERM; resolves with the exit code and how long the exit took. */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const started = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const exit = await Promise.race([this.exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (exit === 'timeout') {
      this.child.kill('SIGKILL');
      throw new Error(`dockfw ignored ${signal} for 10 s:\n${this.output()}`);
    }
    return { ...exit, ms: Date.now() - started };
  }
}

/** Runs a one-shot dockfw command (uninstall, plan) in the engine namespace. */
export async function dockfwCommand(
  host: TestHost,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  requireBuild();
  const result = await execa(
    'nsenter',
    [`--net=/var/run/netns/${host.engineNs}`, '--', process.execPath, DOCKFW_MAIN, ...args],
    { env: dockfwEnv(host, env), reject: false, timeout: 60_000 },
  );
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}
