// The daemon's HTTP side on DOCKFW_LISTEN: liveness, readiness, metrics and
// status for `dockfw status`. GET only, no request bodies, nothing that writes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ListenAddress } from '../config/config.js';
import type { DaemonMetrics } from './metrics.js';
import type { DaemonState } from './state.js';

export interface ObserveServerOptions {
  readonly state: DaemonState;
  readonly metrics: DaemonMetrics;
  readonly logger: Logger;
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  send(response, status, 'application/json; charset=utf-8', `${JSON.stringify(body, null, 2)}\n`);
}

export function createObserveHandler(options: ObserveServerOptions) {
  const { state, metrics, logger } = options;
  return async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://dockfw').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      sendJson(response, 405, { error: 'method not allowed' });
      return;
    }
    switch (path) {
      case '/healthz':
        send(response, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        const reasons = state.notReady();
        sendJson(response, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
        return;
      }
      case '/status':
        sendJson(response, 200, state.report());
        return;
      case '/metrics':
        try {
          send(response, 200, metrics.contentType, await metrics.render());
        } catch (error) {
          logger.error({ error: error instanceof Error ? error.message : String(error) }, 'metrics failed');
          send(response, 500, 'text/plain; charset=utf-8', 'metrics failed\n');
        }
        return;
      default:
        sendJson(response, 404, {
          error: 'not found',
          paths: ['/healthz', '/readyz', '/metrics', '/status'],
        });
    }
  };
}

export interface ObserveServer {
  /** Where it actually listens (port 0 becomes a real port). */
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** Listens on `listen`; rejects if the address is taken (another dockfw on this host?). */
export async function startObserveServer(
  listen: ListenAddress,
  options: ObserveServerOptions,
): Promise<ObserveServer> {
  const handler = createObserveHandler(options);
  const server: Server = createServer((request, response) => void handler(request, response));
  // A probe that never finishes its request must not hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
