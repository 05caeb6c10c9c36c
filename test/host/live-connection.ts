/**
 * A long-lived TCP connection from the client namespace: a node process bound
 * to one client address sends a numbered line every 50 ms and counts the echoes
 * it reads back (or, from a server that sends on its own, the lines it sends).
 * Stopped by pid (SIGKILL), also when a test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { netnsPath } from './netns.js';

const CLIENT = `
const net = require('node:net');
const [from, to, port] = process.argv.slice(1);
const socket = net.connect({ host: to, port: Number(port), localAddress: from });
let sent = 0;
let buffer = '';
socket.setEncoding('utf8');
socket.on('connect', () => {
  console.log(JSON.stringify({ connected: true }));
  setInterval(() => socket.write(String(++sent) + '\\n'), 50);
});
socket.on('data', (chunk) => {
  buffer += chunk;
  const lines = buffer.split('\\n');
  buffer = lines.pop();
  for (const line of lines) console.log(JSON.stringify({ line: line.length }));
});
socket.on('error', (error) => console.log(JSON.stringify({ error: error.message })));
socket.on('close', () => console.log(JSON.stringify({ closed: true })));
`;

export class LiveConnection {
  private static readonly open = new Set<LiveConnection>();

  /** Kills every connection process still running (afterAll / afterEach). */
  static stopAll(): void {
    for (const c of LiveConnection.open) c.stop();
  }

  /** Lines read so far. */
  echoes = 0;
  connected = false;
  error: string | undefined;
  private readonly child: ChildProcess;

  constructor(
    clientNs: string,
    readonly from: string,
    readonly to: string,
    readonly port: number,
  ) {
    this.child = spawn(
      'nsenter',
      [`--net=${netnsPath(clientNs)}`, '--', process.execPath, '-e', CLIENT, from, to, String(port)],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let buffer = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const event = JSON.parse(line) as { connected?: true; line?: number; error?: string };
        if (event.connected === true) this.connected = true;
        if (event.line !== undefined) this.echoes++;
        if (event.error !== undefined) this.error = event.error;
      }
    });
    LiveConnection.open.add(this);
    this.child.on('exit', () => LiveConnection.open.delete(this));
  }

  get name(): string {
    return `${this.from} → ${this.to.includes(':') ? `[${this.to}]` : this.to}:${this.port}`;
  }

  /** Resolves once echoes come back; rejects when none do within the time. */
  async waitEchoing(timeoutMs = 10_000): Promise<void> {
    const start = this.echoes;
    const deadline = Date.now() + timeoutMs;
    while (this.echoes < start + 3) {
      if (Date.now() > deadline)
        throw new Error(`${this.name}: no echo within ${timeoutMs} ms (${this.error ?? 'no error'})`);
      await sleep(25);
    }
  }

  /** Echoes read during the next `ms`. */
  async echoesDuring(ms: number): Promise<number> {
    const start = this.echoes;
    await sleep(ms);
    return this.echoes - start;
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
