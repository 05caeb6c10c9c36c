// DockerClient over dockerode. Two connections: one for requests (with a
// timeout) and one for the event stream (which must stay open indefinitely).
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
// Before dockerode: it defers dockerode's SSH and BuildKit modules.
import './lazy-optional-deps.js';
import Docker from 'dockerode';
import {
  listStamp,
  mayHaveEndpoints,
  type DockerClient,
  type ListedContainer,
  type EngineInfo,
  type EventSubscription,
  type NetworkSummary,
} from './docker-client.js';

export { mayHaveEndpoints };
import { EVENT_FILTERS, JsonLineDecoder, parseEvent, type DockerEvent } from './events.js';

const REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_SOCKET = '/var/run/docker.sock';

export type DockerEndpoint =
  | { readonly kind: 'unix'; readonly socketPath: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly tls: boolean }
  | {
      readonly kind: 'ssh';
      readonly host: string;
      readonly port: number;
      readonly username: string | undefined;
    };

/**
 * DOCKER_HOST → where to connect: unix://PATH, tcp://HOST:PORT (TLS when
 * DOCKER_TLS_VERIFY is set), http://, https://, ssh://[USER@]HOST[:PORT].
 */
export function parseDockerHost(value: string | undefined, tlsVerify?: string): DockerEndpoint {
  const text = value?.trim() ?? '';
  if (text === '') return { kind: 'unix', socketPath: DEFAULT_SOCKET };
  if (text.startsWith('unix://'))
    return { kind: 'unix', socketPath: text.slice('unix://'.length) || DEFAULT_SOCKET };
  const scheme = /^([a-z]+):\/\//.exec(text)?.[1];
  if (scheme !== 'tcp' && scheme !== 'http' && scheme !== 'https' && scheme !== 'ssh') {
    throw new Error(
      `DOCKER_HOST ${text} is not supported: use unix://PATH, tcp://HOST:PORT or ssh://USER@HOST`,
    );
  }
  let url: URL;
  try {
    url = new URL(`http://${text.slice(scheme.length + 3)}`);
  } catch {
    throw new Error(`DOCKER_HOST ${text} is not a valid ${scheme}:// address`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (scheme === 'ssh') {
    return {
      kind: 'ssh',
      host,
      port: url.port === '' ? 22 : Number(url.port),
      username: url.username || undefined,
    };
  }
  const tls =
    scheme === 'https' ||
    (scheme === 'tcp' && tlsVerify !== undefined && tlsVerify !== '' && tlsVerify !== '0');
  const port = url.port === '' ? (tls ? 2376 : 2375) : Number(url.port);
  return { kind: 'tcp', host, port, tls };
}

function dockerodeOptions(
  endpoint: DockerEndpoint,
  env: NodeJS.ProcessEnv,
  timeout: number | undefined,
): Docker.DockerOptions {
  const base = timeout === undefined ? {} : { timeout };
  if (endpoint.kind === 'unix') return { ...base, socketPath: endpoint.socketPath };
  if (endpoint.kind === 'ssh') {
    const agent = env.SSH_AUTH_SOCK;
    return {
      ...base,
      protocol: 'ssh',
      host: endpoint.host,
      port: endpoint.port,
      ...(endpoint.username === undefined ? {} : { username: endpoint.username }),
      ...(agent === undefined ? {} : { sshOptions: { agent } }),
    };
  }
  const options: Docker.DockerOptions = {
    ...base,
    host: endpoint.host,
    port: endpoint.port,
    protocol: endpoint.tls ? 'https' : 'http',
  };
  const certPath = env.DOCKER_CERT_PATH;
  if (endpoint.tls && certPath) {
    return {
      ...options,
      ca: readFileSync(join(certPath, 'ca.pem')),
      cert: readFileSync(join(certPath, 'cert.pem')),
      key: readFileSync(join(certPath, 'key.pem')),
    };
  }
  return options;
}

/**
 * Rejects when `request` has not settled within `ms`, or at once when `lost`
 * aborts. docker-modem's own timeout does not cover an answer the engine cuts
 * off half-way (headers sent, body not): such a request never settles, and a
 * sync waiting on it would hold the runner (and every repair behind it).
 */
export function withDeadline<T>(
  request: Promise<T>,
  what: string,
  ms = REQUEST_TIMEOUT_MS,
  lost?: AbortSignal,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onLost: (() => void) | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`docker ${what}: no complete answer within ${ms / 1000} s`)),
      ms,
    );
    onLost = () => reject(new Error(`docker ${what}: the connection to the engine was lost`));
    if (lost?.aborted === true) onLost();
    else lost?.addEventListener('abort', onLost, { once: true });
  });
  return Promise.race([request, deadline]).finally(() => {
    clearTimeout(timer);
    if (onLost !== undefined) lost?.removeEventListener('abort', onLost);
  });
}

function statusCode(error: unknown): number | undefined {
  const code = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** One connection's signal: every request in flight listens to it (a full read has many). */
function connection(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

/** A client for `dockerHost` (config's DOCKER_HOST); TLS and ssh settings come from `env`. */
export function createDockerClient(dockerHost: string, env: NodeJS.ProcessEnv = process.env): DockerClient {
  const endpoint = parseDockerHost(dockerHost, env.DOCKER_TLS_VERIFY);
  const api = new Docker(dockerodeOptions(endpoint, env, REQUEST_TIMEOUT_MS));
  const stream = new Docker(dockerodeOptions(endpoint, env, undefined));
  // A request in flight when the event stream ends went to an engine that is
  // gone or going (a restart): its answer may never come, so it fails now and
  // the sync is retried against the engine that comes back, not 30 s later.
  let inFlight = connection();
  function streamLost(): void {
    const lost = inFlight;
    inFlight = connection();
    lost.abort();
  }
  function ask<T>(what: string, request: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    const { signal } = inFlight;
    return withDeadline(request(signal), what, REQUEST_TIMEOUT_MS, signal);
  }

  return {
    async subscribe(): Promise<EventSubscription> {
      const response = await stream.getEvents({ filters: EVENT_FILTERS });
      const body = response as NodeJS.ReadableStream & { destroy(): void; socket?: Socket };
      // The stream is quiet for as long as nothing happens; over TCP, keepalive
      // probes notice a peer that vanished without closing (no-op on unix sockets).
      body.socket?.setKeepAlive(true, 30_000);
      let closed = false;
      body.once('close', () => {
        if (!closed) streamLost();
      });
      async function* iterate(): AsyncGenerator<DockerEvent> {
        const decoder = new JsonLineDecoder();
        try {
          for await (const chunk of body) {
            for (const message of decoder.push(chunk.toString())) {
              const event = parseEvent(message);
              if (event) yield event;
            }
          }
        } catch (error) {
          if (!closed) throw error;
        }
      }
      const events = iterate();
      return {
        [Symbol.asyncIterator]: () => events,
        close: () => {
          closed = true;
          body.destroy();
        },
      };
    },

    async listContainers(): Promise<ListedContainer[]> {
      const containers = await ask('list containers', (abortSignal) =>
        api.listContainers({ all: true, abortSignal }),
      );
      return containers
        .filter((c) => mayHaveEndpoints(c.State))
        .map((c) => ({ id: c.Id, stamp: listStamp(c) }));
    },

    async inspectContainer(id: string): Promise<unknown> {
      try {
        return await ask(`inspect ${id.slice(0, 12)}`, (abortSignal) =>
          api.getContainer(id).inspect({ abortSignal }),
        );
      } catch (error) {
        if (statusCode(error) === 404) return undefined;
        throw error;
      }
    },

    async listNetworks(): Promise<NetworkSummary[]> {
      const networks = await ask('list networks', (abortSignal) => api.listNetworks({ abortSignal }));
      return networks.map((n) => ({ Id: n.Id, Name: n.Name, Driver: n.Driver, Options: n.Options ?? null }));
    },

    async inspectNetwork(id: string): Promise<unknown> {
      try {
        return await ask(`inspect network ${id.slice(0, 12)}`, () => api.getNetwork(id).inspect());
      } catch (error) {
        if (statusCode(error) === 404) return undefined;
        throw error;
      }
    },

    async info(): Promise<EngineInfo> {
      const [info, version] = await Promise.all([
        ask(
          'info',
          () => api.info() as Promise<{ ServerVersion?: string; FirewallBackend?: { Driver?: string } }>,
        ),
        ask('version', () => api.version()),
      ]);
      return {
        serverVersion: info.ServerVersion ?? version.Version,
        apiVersion: version.ApiVersion,
        firewallBackend: info.FirewallBackend?.Driver,
      };
    },
  };
}
