/**
 * Shared pieces of the benchmarks: statistics, network namespaces that look
 * like a Docker host to dockfw's detection, the stand-in engine as a child
 * process, and cleanup of everything started (by pid / by name), also when a
 * benchmark fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const BUILD_DIR = path.dirname(fileURLToPath(import.meta.url));

export function quantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

export const median = (samples: readonly number[]): number => quantile(samples, 0.5);

/** ms with a sensible number of digits. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value >= 100) return `${value.toFixed(0)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

/** Wall-clock time in ms with sub-ms resolution, comparable between processes on one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

// ---------------------------------------------------------------- cleanup

const namespaces = new Set<string>();
const children = new Set<ChildProcess>();

/** A child's own cleanup (a test host's engine) may take this long before SIGKILL. */
const CHILD_GRACE_MS = 30_000;

/**
 * Ends every child this process started (SIGTERM, then SIGKILL after a grace
 * period, so a child can take down what it started) and deletes every
 * namespace this process made.
 */
export async function cleanupAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }),
  );
  children.clear();
  for (const ns of namespaces) await execa('ip', ['netns', 'delete', ns], { reject: false });
  namespaces.clear();
}

/** Tracks a child so cleanupAll() ends it; forgets it once it exits. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// ---------------------------------------------------------------- namespaces

let nsCounter = 0;

export async function createNetns(tag: string): Promise<string> {
  const name = `dfw-bench-${process.pid}-${tag}-${nsCounter++}`;
  await execa('ip', ['netns', 'add', name]);
  namespaces.add(name);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export async function deleteNetns(name: string): Promise<void> {
  await execa('ip', ['netns', 'delete', name], { reject: false });
  namespaces.delete(name);
}

/** Runs a command in a namespace (nsenter: no /sys remount). */
export function inNs(ns: string, file: string, args: readonly string[], input?: string) {
  return execa('nsenter', [`--net=/var/run/netns/${ns}`, '--', file, ...args], {
    ...(input === undefined ? {} : { input }),
  });
}

export type Variant = 'nft' | 'legacy';

/**
 * Docker 28's filter chains made by hand (DOCKER-USER, DOCKER, DOCKER-FORWARD
 * and FORWARD's jumps to them), both families, in one iptables variant; enough
 * for dockfw's detection to find "Docker's chains".
 */
export async function addDockerChains(ns: string, variant: Variant): Promise<void> {
  const payload = [
    '*filter',
    ':DOCKER-USER - [0:0]',
    ':DOCKER - [0:0]',
    ':DOCKER-FORWARD - [0:0]',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j DOCKER-FORWARD',
    'COMMIT',
    '',
  ].join('\n');
  await inNs(ns, `iptables-${variant}-restore`, ['--noflush', '-w'], payload);
  await inNs(ns, `ip6tables-${variant}-restore`, ['--noflush', '-w'], payload);
}

// ---------------------------------------------------------------- stand-in engine

export interface Standin {
  readonly socket: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts bench/standin-engine.js with `count` running containers; resolves once it listens. */
export async function startStandin(socket: string, count: number): Promise<Standin> {
  const child = track(
    spawn(process.execPath, [path.join(BUILD_DIR, 'standin-engine.js'), socket, String(count)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      if (chunk.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`stand-in engine exited early (${code})`)));
  });
  return {
    socket,
    pid: child.pid ?? -1,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** POST to the stand-in engine's control endpoint. */
export function standinPost<T>(socket: string, urlPath: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: urlPath, method: 'POST' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as T);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Runs a compiled bench script inside a namespace and returns the JSON it
 * prints on its last `RESULT ` line; its other output passes through.
 */
export async function runInNs<T>(ns: string, script: string, args: readonly string[]): Promise<T> {
  const child = track(
    spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${ns}`,
        '--',
        process.execPath,
        ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        path.join(BUILD_DIR, script),
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    ),
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (code !== 0 || line === undefined) throw new Error(`${script} failed (exit ${code}):\n${out}`);
  return JSON.parse(line.slice('RESULT '.length)) as T;
}
