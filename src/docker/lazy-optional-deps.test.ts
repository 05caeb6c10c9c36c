import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { createDockerClient } from './dockerode-client.js';

/** Whether a module, as dockerode resolves it, is loaded. */
function isLoaded(request: string): boolean {
  const require = createRequire(createRequire(import.meta.url).resolve('dockerode'));
  return require.cache[require.resolve(request)] !== undefined;
}

// A TCP server that accepts and speaks garbage: a real ssh2 client fails its
// handshake with a protocol error, a stand-in that never loaded ssh2 cannot.
let server: Server;
let port = 0;
const sockets = new Set<Socket>();
beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.end('HTTP/1.1 400 not ssh\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('dockerode with its optional modules deferred', () => {
  it('loads no SSH or BuildKit module for a unix socket', async () => {
    const client = createDockerClient('unix:///nonexistent/docker.sock', {});
    await expect(client.info()).rejects.toThrow();
    for (const name of ['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']) {
      expect(isLoaded(name), name).toBe(false);
    }
  });

  it('loads the real ssh2 client when DOCKER_HOST is ssh://', async () => {
    const client = createDockerClient(`ssh://nobody@127.0.0.1:${port}`, {});
    const error = await client.info().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(Error);
    // ssh2's own handshake error, not a TypeError from a missing client.
    expect(error).not.toBeInstanceOf(TypeError);
    expect(error?.message).toMatch(/handshake/);
    expect(isLoaded('ssh2')).toBe(true);
  });
});
