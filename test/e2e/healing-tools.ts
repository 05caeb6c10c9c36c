/**
 * Tools of the healing suite: background probers that record every outcome
 * while something is being broken, and a Docker API socket that can be made to
 * vanish and come back (an unreachable engine, without touching the engine).
 */
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProbeOutcome, TestHost } from '../host/index.js';

export interface ProbeRecord {
  readonly at: number;
  readonly outcome: ProbeOutcome;
}

export interface Prober {
  /** Outcomes so far. */
  readonly records: readonly ProbeRecord[];
  reached(): number;
  /** Stops after the probe in flight; resolves with every outcome. */
  stop(): Promise<readonly ProbeRecord[]>;
}

/**
 * Probes `from` → `to:port` over and over (a short connect timeout, `gapMs`
 * between probes) until stopped. Two loops, offset by half a period, so the
 * target is probed about every 50-100 ms even though a dropped SYN costs a
 * loop its whole timeout.
 */
export function startProber(
  host: TestHost,
  target: { from: string; to: string; port: number },
  options: { timeoutMs?: number; gapMs?: number; loops?: number } = {},
): Prober {
  const records: ProbeRecord[] = [];
  const timeoutMs = options.timeoutMs ?? 150;
  const gapMs = options.gapMs ?? 50;
  let stopped = false;
  const loops = Array.from({ length: options.loops ?? 2 }, async (_, i) => {
    await sleep(i * ((timeoutMs + gapMs) / 2));
    while (!stopped) {
      const at = Date.now();
      const outcome = await host.probe({ ...target, timeoutMs });
      records.push({ at, outcome });
      await sleep(gapMs);
    }
  });
  return {
    records,
    reached: () => records.filter((r) => r.outcome === 'reached').length,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return records;
    },
  };
}

/** Waits until `from` gets an answer from `to:port` (a container coming back, rules repaired). */
export async function waitUntilReached(
  host: TestHost,
  target: { from: string; to: string; port: number },
  timeoutMs = 20_000,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if ((await host.probe({ ...target, timeoutMs: 300 })) === 'reached') return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`${target.from} never reached ${target.to}:${target.port} within ${timeoutMs} ms`);
}

/**
 * A unix socket that forwards every connection to the engine's socket, and
 * can go away (listening stops, open connections are cut, as when dockerd
 * dies) and come back.
 */
export class SwitchableDockerSocket {
  private server: net.Server | undefined;
  private readonly open = new Set<net.Socket>();

  constructor(
    private readonly engineSocket: string,
    readonly path: string,
  ) {}

  get dockerHost(): string {
    return `unix://${this.path}`;
  }

  async up(): Promise<void> {
    if (this.server) return;
    await rm(this.path, { force: true });
    const server = net.createServer((client) => {
      const upstream = net.connect(this.engineSocket);
      for (const socket of [client, upstream]) {
        this.open.add(socket);
        socket.on('close', () => this.open.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, resolve);
    });
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.open) socket.destroy();
    this.open.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(this.path, { force: true });
  }
}
