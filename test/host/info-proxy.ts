/**
 * A Docker API socket in front of a test engine that answers `GET /info` with
 * another `FirewallBackend` (Docker 28.5.2 cannot say "nftables" while building
 * no rules itself). Everything else, event streams included, passes through.
 */
import { rm } from 'node:fs/promises';
import http from 'node:http';
import { listenOn, relayAnswer } from './relay.js';

export interface InfoProxy {
  /** unix:// address for DOCKER_HOST. */
  readonly dockerHost: string;
  close(): Promise<void>;
}

const INFO_PATH = /^(?:\/v[0-9.]+)?\/info(?:\?.*)?$/;

/** Returns the /info body with FirewallBackend replaced; other fields untouched. */
export function rewriteInfo(body: string, driver: string): string {
  const info = JSON.parse(body) as Record<string, unknown>;
  info.FirewallBackend = { Driver: driver };
  return JSON.stringify(info);
}

export async function startInfoProxy(
  engineSocket: string,
  proxySocket: string,
  firewallBackend = 'nftables',
): Promise<InfoProxy> {
  await rm(proxySocket, { force: true });
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { socketPath: engineSocket, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        if (req.method === 'GET' && INFO_PATH.test(req.url ?? '') && answer.statusCode === 200) {
          let body = '';
          answer.setEncoding('utf8');
          answer.on('data', (chunk: string) => (body += chunk));
          answer.on('end', () => {
            const rewritten = rewriteInfo(body, firewallBackend);
            const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(rewritten)) };
            delete headers['transfer-encoding'];
            res.writeHead(200, headers).end(rewritten);
          });
          return;
        }
        relayAnswer(answer, res);
      },
    );
    // The engine is down: drop the client's connection, as a dead socket would.
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await listenOn(server, proxySocket);
  return {
    dockerHost: `unix://${proxySocket}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(proxySocket, { force: true });
    },
  };
}
