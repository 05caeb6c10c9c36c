// An engine that hangs up half-way through an answer (headers sent, body cut):
// docker-modem never settles such a request, whatever its timeout, so every
// request dockfw makes has a deadline of its own (withDeadline). Found by the
// fault-injecting proxy of test/e2e/hardening-engine.test.ts. A request in
// flight when the event stream ends (an engine restart) fails at once.
import { rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerClient, withDeadline } from '../../src/docker/dockerode-client.js';

const socket = path.join(os.tmpdir(), `dockfw-cut-${process.pid}.sock`);
let server: http.Server;

beforeAll(async () => {
  await rm(socket, { force: true });
  server = http.createServer((_req, res) => {
    const body = JSON.stringify([{ Id: 'a'.repeat(64), State: 'running' }]);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.write(body.slice(0, 10));
    setTimeout(() => res.destroy(), 20);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(socket, { force: true });
});

it('docker-modem alone never settles a cut answer, even with a timeout', async () => {
  const api = new Docker({ socketPath: socket, timeout: 200 });
  const outcome = await Promise.race([
    api.listContainers({ all: true }).then(
      () => 'resolved',
      () => 'rejected',
    ),
    sleep(1000).then(() => 'pending'),
  ]);
  expect(outcome).toBe('pending');
});

it('withDeadline turns it into an error the sync can retry', async () => {
  const api = new Docker({ socketPath: socket, timeout: 200 });
  await expect(withDeadline(api.listContainers({ all: true }), 'list containers', 300)).rejects.toThrow(
    'docker list containers: no complete answer within 0.3 s',
  );
});

it('withDeadline leaves a prompt answer alone', async () => {
  await expect(withDeadline(Promise.resolve(42), 'x', 300)).resolves.toBe(42);
  await expect(withDeadline(Promise.reject(new Error('500')), 'x', 300)).rejects.toThrow('500');
});

describe('a request in flight when the event stream ends', () => {
  const engineSocket = path.join(os.tmpdir(), `dockfw-lost-${process.pid}.sock`);
  let engine: http.Server;
  let events: http.ServerResponse | undefined;

  beforeAll(async () => {
    await rm(engineSocket, { force: true });
    engine = http.createServer((req, res) => {
      if (req.url?.startsWith('/events')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        events = res;
      } else if (req.url?.includes('a'.repeat(64))) {
        // An engine going down: the answer starts and never ends.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"Id":');
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"message":"No such container"}');
      }
    });
    await new Promise<void>((resolve) => engine.listen(engineSocket, resolve));
  });

  afterAll(async () => {
    engine.closeAllConnections();
    await new Promise<void>((resolve) => engine.close(() => resolve()));
    await rm(engineSocket, { force: true });
  });

  it('fails at once instead of holding the sync for the deadline; later requests go through', async () => {
    const docker = createDockerClient(`unix://${engineSocket}`);
    const subscription = await docker.subscribe();
    // Read as the watch reads it, until the engine ends it.
    const drained = (async () => {
      for await (const _event of subscription);
    })();
    const outcome = docker.inspectContainer('a'.repeat(64)).then(
      () => 'resolved',
      (error: unknown) => (error as Error).message,
    );
    const early = await Promise.race([outcome, sleep(300).then(() => 'pending')]);
    expect(early).toBe('pending');
    events?.end();
    const settled = await Promise.race([outcome, sleep(2000).then(() => 'still pending')]);
    expect(settled).toBe(`docker inspect ${'a'.repeat(12)}: the connection to the engine was lost`);
    // The next request belongs to the next connection: not failed by the old loss.
    await expect(docker.inspectContainer('b'.repeat(64))).resolves.toBeUndefined();
    await drained;
    subscription.close();
  });
});
