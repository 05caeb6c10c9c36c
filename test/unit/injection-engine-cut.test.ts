// An engine that hangs up half-way through an answer (headers sent, body cut):
// docker-modem never settles such a request, whatever its timeout, so every
// request dockfw makes has a deadline of its own (withDeadline). Found by the
// fault-injecting proxy of test/e2e/hardening-engine.test.ts.
import { rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { withDeadline } from '../../src/docker/dockerode-client.js';

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
