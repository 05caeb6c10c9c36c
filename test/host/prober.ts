/**
 * Starts prober.mjs (a tight TCP prober) in a test host's client namespace as
 * a process of its own, so its timing does not depend on the test's event
 * loop, and stops it by its pid to read its figures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { netnsPath } from './netns.js';
import { REPO_ROOT } from './provisioned.js';

const PROBER = path.join(REPO_ROOT, 'test', 'host', 'prober.mjs');

export interface TargetFigures {
  /** Connections attempted. */
  sent: number;
  /** Connects that completed: the port answered. */
  connected: number;
  /** Of those, the ones that got an HTTP status line back. */
  http: number;
  refused: number;
  timedOut: number;
  /** Not sent: too many still in flight. */
  skipped: number;
  errors: Record<string, number>;
  /** When the first answers came (ms since the epoch). */
  answeredAt: number[];
}

export interface ProberFigures {
  from: string;
  intervalMs: number;
  startedAt: number;
  stoppedAt: number;
  /** Keyed by target, `ADDRESS:PORT` (IPv6 in brackets). */
  targets: Record<string, TargetFigures>;
}

export interface ProberOptions {
  from: string;
  targets: readonly string[];
  intervalMs?: number;
  timeoutMs?: number;
  /**
   * Once a target answered, probe it only this often (default: every interval).
   * For a prober that waits for each target's first answer: every answer costs
   * the container a connection, and a loaded machine slows what is measured.
   */
  answeredIntervalMs?: number;
}

export class TcpProber {
  private static readonly running = new Set<TcpProber>();

  /** Stops every prober of this worker still running (after a failed test). */
  static async stopAll(): Promise<void> {
    await Promise.all([...TcpProber.running].map((p) => p.stop().catch(() => undefined)));
  }

  private stdout = '';
  private stderr = '';
  private readonly exited: Promise<number | null>;

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    TcpProber.running.add(this);
  }

  /** Starts probing; resolves once the prober says it is probing. */
  static async start(clientNs: string, options: ProberOptions): Promise<TcpProber> {
    // nsenter --net execs the command (no fork): the pid is the prober's own.
    const child = spawn(
      'nsenter',
      [`--net=${netnsPath(clientNs)}`, '--', process.execPath, PROBER, JSON.stringify(options)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const prober = new TcpProber(child);
    const deadline = Date.now() + 10_000;
    while (!prober.stdout.includes('"ready":true')) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await prober.stop().catch(() => undefined);
        throw new Error(`prober did not start: ${prober.stderr}`);
      }
      await sleep(10);
    }
    return prober;
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('prober did not start');
    return this.child.pid;
  }

  /** SIGTERM to its pid; resolves with its figures. */
  async stop(): Promise<ProberFigures> {
    TcpProber.running.delete(this);
    if (this.child.exitCode === null && this.child.signalCode === null) process.kill(this.pid, 'SIGTERM');
    const code = await Promise.race([this.exited, sleep(10_000).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      process.kill(this.pid, 'SIGKILL');
      throw new Error(`prober ignored SIGTERM: ${this.stderr}`);
    }
    const last = this.stdout.trim().split('\n').pop() ?? '';
    const figures = JSON.parse(last) as ProberFigures | { ready: true };
    if (!('targets' in figures)) throw new Error(`prober printed no figures (exit ${code}): ${this.stderr}`);
    return figures;
  }
}

/** Totals over every target of a prober. */
export function totals(figures: ProberFigures): { sent: number; answers: number; http: number } {
  const all = Object.values(figures.targets);
  return {
    sent: all.reduce((n, t) => n + t.sent, 0),
    answers: all.reduce((n, t) => n + t.connected, 0),
    http: all.reduce((n, t) => n + t.http, 0),
  };
}
