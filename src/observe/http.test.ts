// The real HTTP server on an ephemeral loopback port.
import { afterEach, describe, expect, it } from 'vitest';
import { askDaemon } from './client.js';
import { startObserveServer, type ObserveServer } from './http.js';
import { memoryLogger } from './memory-logger.js';
import { DaemonMetrics } from './metrics.js';
import { DaemonState, type StatusReport } from './state.js';
import { exampleDesired, familyReport } from './test-support.js';

let server: ObserveServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start() {
  const state = new DaemonState({ version: '1.2.3', defaultPolicy: 'deny' });
  const { logger } = memoryLogger();
  const metrics = new DaemonMetrics({
    state,
    logger,
    version: '1.2.3',
    readCounters: () => Promise.resolve({ drops: new Map(), catchAll: { packets: 0, bytes: 0 }, rules: 4 }),
  });
  server = await startObserveServer({ host: '127.0.0.1', port: 0 }, { state, metrics, logger });
  const listen = { host: '127.0.0.1', port: server.address.port };
  return { state, get: (path: string) => askDaemon(listen, path), url: `http://127.0.0.1:${listen.port}` };
}

describe('observe HTTP server', () => {
  it('answers /healthz at once, before any sync', async () => {
    const { get } = await start();
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
  });

  it('answers /readyz 503 with the reasons until connected and synced, then 200', async () => {
    const { state, get } = await start();
    const before = await get('/readyz');
    expect(before.status).toBe(503);
    expect(JSON.parse(before.body)).toEqual({
      ready: false,
      reasons: ['docker event stream not connected', 'first sync not done yet'],
    });
    state.dockerConnected();
    state.syncApplied(exampleDesired(), [familyReport(4, true)]);
    state.syncFinished(4);
    const after = await get('/readyz');
    expect(after.status).toBe(200);
    expect(JSON.parse(after.body)).toEqual({ ready: true, reasons: [] });
  });

  it('serves the status report as JSON', async () => {
    const { state, get } = await start();
    state.syncApplied(exampleDesired(), [familyReport(4, true)]);
    const answer = await get('/status');
    const report = JSON.parse(answer.body) as StatusReport;
    expect(answer.status).toBe(200);
    expect(report.defaultPolicy).toBe('deny');
    expect(report.containers.map((c) => c.name)).toEqual(['db', 'web']);
  });

  it('serves Prometheus text on /metrics', async () => {
    const { state, url } = await start();
    state.syncApplied(exampleDesired(), [familyReport(4, true)]);
    const response = await fetch(`${url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('# TYPE dockfw_sync_duration_seconds histogram');
    expect(text).toContain('dockfw_managed_rules{family="ipv4"} 4');
  });

  it('refuses other methods and paths', async () => {
    const { url } = await start();
    const post = await fetch(`${url}/readyz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${url}/nope`)).status).toBe(404);
  });

  it('fails to start on an address that is taken', async () => {
    await start();
    const state = new DaemonState({ version: '1', defaultPolicy: 'allow' });
    const { logger } = memoryLogger();
    const metrics = new DaemonMetrics({
      state,
      logger,
      version: '1',
      readCounters: () => Promise.reject(new Error()),
    });
    const port = server?.address.port ?? 0;
    await expect(startObserveServer({ host: '127.0.0.1', port }, { state, metrics, logger })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});
