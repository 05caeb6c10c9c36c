// An in-memory DockerClient for tests: containers as raw inspect JSON, events
// pushed by the test, and switches to make the engine unreachable.
import type {
  DockerClient,
  EngineInfo,
  EventSubscription,
  ListedContainer,
  NetworkSummary,
} from './docker-client.js';
import type { DockerEvent } from './events.js';

export class FakeDockerClient implements DockerClient {
  /** Raw inspect JSON by id; listed in insertion order. */
  readonly containers = new Map<string, unknown>();
  networks: NetworkSummary[] = [{ Id: 'f'.repeat(64), Name: 'bridge', Driver: 'bridge', Options: {} }];
  /** Ids listed but gone by the time they are inspected. */
  readonly vanishing = new Set<string>();
  reachable = true;
  /** Every call, in order, e.g. 'subscribe', 'list', 'inspect <id>'. */
  readonly calls: string[] = [];
  private readonly subscribers = new Set<(event: DockerEvent | 'end') => void>();

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  private check(call: string): void {
    this.calls.push(call);
    if (!this.reachable)
      throw Object.assign(new Error('connect ENOENT /run/docker.sock'), { code: 'ENOENT' });
  }

  emit(event: DockerEvent): void {
    for (const subscriber of this.subscribers) subscriber(event);
  }

  /** Ends every open event stream, as a stopping engine does. */
  endStreams(): void {
    for (const subscriber of this.subscribers) subscriber('end');
  }

  subscribe(): Promise<EventSubscription> {
    try {
      this.check('subscribe');
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const queue: (DockerEvent | 'end')[] = [];
    let wake: (() => void) | undefined;
    const push = (item: DockerEvent | 'end'): void => {
      queue.push(item);
      wake?.();
    };
    this.subscribers.add(push);
    const close = (): void => {
      this.subscribers.delete(push);
      push('end');
    };
    async function* iterate(): AsyncGenerator<DockerEvent> {
      for (;;) {
        const item = queue.shift();
        if (item === 'end') return;
        if (item !== undefined) {
          yield item;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    }
    const events = iterate();
    return Promise.resolve({ [Symbol.asyncIterator]: () => events, close });
  }

  listContainers(): Promise<ListedContainer[]> {
    this.check('list');
    // The whole inspect as the stamp: any change to a container changes it.
    return Promise.resolve(
      [...this.containers].map(([id, raw]) => ({ id, stamp: JSON.stringify(raw) ?? 'gone' })),
    );
  }

  inspectContainer(id: string): Promise<unknown> {
    this.check(`inspect ${id.slice(0, 12)}`);
    if (this.vanishing.has(id)) return Promise.resolve(undefined);
    return Promise.resolve(this.containers.get(id));
  }

  listNetworks(): Promise<NetworkSummary[]> {
    this.check('networks');
    return Promise.resolve(this.networks);
  }

  /** `GET /networks/{id}` answers, by network id (absent: gone). */
  networkDetails = new Map<string, unknown>();

  inspectNetwork(id: string): Promise<unknown> {
    this.check(`inspect network ${id.slice(0, 12)}`);
    return Promise.resolve(this.networkDetails.get(id));
  }

  info(): Promise<EngineInfo> {
    this.check('info');
    return Promise.resolve({ serverVersion: '28.5.2', apiVersion: '1.51', firewallBackend: 'iptables' });
  }
}

/** Minimal `docker inspect` JSON for one running container. */
export function inspectJson(options: {
  id: string;
  name: string;
  labels?: Record<string, string>;
  ipv4?: string;
  ports?: Record<string, { HostIp: string; HostPort: string }[]>;
  running?: boolean;
}): unknown {
  return {
    Id: options.id,
    Name: `/${options.name}`,
    State: { Running: options.running ?? true },
    Config: { Labels: options.labels ?? {} },
    NetworkSettings: {
      Networks: { bridge: { IPAddress: options.ipv4 ?? '172.17.0.2', GlobalIPv6Address: '' } },
      Ports: options.ports ?? { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] },
    },
  };
}
