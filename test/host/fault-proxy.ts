/**
 * A Docker API socket in front of a test engine that records every request and
 * can misbehave on purpose: answer with an error status, answer slowly, cut an
 * answer off half-way, cut the event streams, or list a container the engine
 * does not have (one that "vanished" between list and inspect). Everything else
 * passes through untouched, event streams included.
 */
import { rm } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenOn, relayAnswer } from './relay.js';

export type Fault =
  /** Answer requests whose path matches with this status, without asking the engine. */
  | { readonly kind: 'status'; readonly status: number; readonly path: RegExp }
  /** Wait this long before passing the request on. */
  | { readonly kind: 'delay'; readonly ms: number; readonly path: RegExp }
  /** Pass on, send the headers and half the body, then close the connection. */
  | { readonly kind: 'cut-body'; readonly path: RegExp }
  /** Add a running container with this id to every container list. */
  | { readonly kind: 'ghost'; readonly id: string };

export interface RecordedCall {
  readonly method: string;
  /** Path without the API version prefix and the query: `/containers/json`. */
  readonly path: string;
  readonly url: string;
}

export interface FaultProxy {
  /** unix:// address for DOCKER_HOST. */
  readonly dockerHost: string;
  /** Every request received, in order. */
  readonly calls: readonly RecordedCall[];
  /** The fault in force (undefined: pass everything through). */
  fault: Fault | undefined;
  /** Closes every open event stream, as an engine restart or a broken socket would. */
  cutEventStreams(): number;
  close(): Promise<void>;
}

const VERSION_PREFIX = /^\/v[0-9.]+(?=\/)/;

function pathOf(url: string): string {
  return (url.split('?')[0] ?? '').replace(VERSION_PREFIX, '');
}

function withLength(headers: IncomingHttpHeaders, body: string): IncomingHttpHeaders {
  const out = { ...headers, 'content-length': String(Buffer.byteLength(body)) };
  delete out['transfer-encoding'];
  return out;
}

/** A list entry as GET /containers/json spells it, for a container the engine never had. */
function ghostEntry(id: string): Record<string, unknown> {
  return {
    Id: id,
    Names: ['/vanished'],
    Image: 'gone',
    State: 'running',
    Status: 'Up 1 second',
    Labels: { 'dockfw.allow': 'any' },
    Ports: [],
  };
}

export async function startFaultProxy(engineSocket: string, proxySocket: string): Promise<FaultProxy> {
  await rm(proxySocket, { force: true });
  const calls: RecordedCall[] = [];
  const eventStreams = new Set<ServerResponse>();
  const state: { fault: Fault | undefined } = { fault: undefined };

  const server = http.createServer((req, res) => {
    const url = req.url ?? '';
    const path = pathOf(url);
    calls.push({ method: req.method ?? '?', path, url });
    const fault = state.fault;
    const matches = fault !== undefined && 'path' in fault && fault.path.test(path);
    void (async () => {
      if (matches && fault.kind === 'status') {
        req.resume();
        res
          .writeHead(fault.status, { 'content-type': 'application/json' })
          .end(JSON.stringify({ message: `injected fault: ${fault.status}` }));
        return;
      }
      if (matches && fault.kind === 'delay') await sleep(fault.ms);
      const rewrite =
        (matches && fault.kind === 'cut-body') || (fault?.kind === 'ghost' && path === '/containers/json');
      const upstream = http.request(
        { socketPath: engineSocket, path: url, method: req.method, headers: req.headers },
        (answer) => {
          if (rewrite) {
            let body = '';
            answer.setEncoding('utf8');
            answer.on('data', (chunk: string) => (body += chunk));
            answer.on('end', () => {
              if (fault?.kind === 'ghost' && answer.statusCode === 200) {
                const list = JSON.parse(body) as unknown[];
                const changed = JSON.stringify([...list, ghostEntry(fault.id)]);
                res.writeHead(200, withLength(answer.headers, changed)).end(changed);
                return;
              }
              // Promise the whole body, send half of it, hang up.
              res.writeHead(answer.statusCode ?? 502, withLength(answer.headers, body));
              res.write(body.slice(0, Math.floor(body.length / 2)));
              setTimeout(() => res.destroy(), 50);
            });
            return;
          }
          if (path === '/events') {
            eventStreams.add(res);
            res.on('close', () => eventStreams.delete(res));
          }
          relayAnswer(answer, res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    })();
  });
  await listenOn(server, proxySocket);
  return {
    dockerHost: `unix://${proxySocket}`,
    calls,
    get fault() {
      return state.fault;
    },
    set fault(next: Fault | undefined) {
      state.fault = next;
    },
    cutEventStreams: () => {
      const count = eventStreams.size;
      for (const res of eventStreams) res.destroy();
      return count;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(proxySocket, { force: true });
    },
  };
}
