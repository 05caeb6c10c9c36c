/**
 * A stand-in Docker Engine API on a unix socket, for benchmarks at a scale a
 * real engine on this machine cannot reach (5,000 containers). It answers what
 * dockerode asks dockfw's client for (`/_ping`, `/version`, `/info`,
 * `/containers/json`, `/containers/{id}/json`, `/networks`, `/events` held
 * open) with JSON shaped like Docker 28's, precomputed so serving it costs
 * little. Runs as its own process (like dockerd would) via
 * `node standin-engine.js SOCKET COUNT`; a benchmark adds a container with
 * `POST /_bench/start` (answers `{ "emittedAt": epoch ms }`, the time the
 * start event was written to every open event stream).
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export const BRIDGE_NETWORK_ID = createHash('sha256').update('bench bridge').digest('hex');

/** Container `index`'s full id: 64 hex digits, stable across runs. */
export function containerId(index: number): string {
  return createHash('sha256').update(`bench container ${index}`).digest('hex');
}

/** 172.17.0.2 onwards; room for 65,000 containers in Docker's default bridge. */
export function containerAddress(index: number): string {
  const n = index + 2;
  return `172.17.${Math.floor(n / 256)}.${n % 256}`;
}

/** 1 to 20 sources, a mix of single addresses and CIDR blocks from the documentation ranges. */
export function allowLabel(index: number): string {
  const count = 1 + ((index * 7) % 20);
  const sources: string[] = [];
  for (let j = 0; j < count; j++) {
    sources.push(j % 2 === 0 ? `203.0.113.${(index + j) % 250}` : `198.51.100.${(j * 8) % 256}/29`);
  }
  return [...new Set(sources)].join(', ');
}

export interface BenchContainer {
  readonly index: number;
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly labels: Record<string, string>;
  /** Host ports publishing container ports 80 and 443. */
  readonly hostPorts: readonly [number, number];
}

export function benchContainer(index: number): BenchContainer {
  return {
    index,
    id: containerId(index),
    name: `bench-${index}`,
    address: containerAddress(index),
    labels: {
      'dockfw.allow': allowLabel(index),
      'com.docker.compose.project': 'bench',
      'com.docker.compose.service': `svc${index}`,
    },
    hostPorts: [10_000 + 2 * index, 10_001 + 2 * index],
  };
}

const CREATED = '2026-01-01T00:00:00.000000000Z';
const IMAGE_ID = `sha256:${'a'.repeat(64)}`;

function portMap(c: BenchContainer) {
  return {
    '80/tcp': [
      { HostIp: '0.0.0.0', HostPort: String(c.hostPorts[0]) },
      { HostIp: '::', HostPort: String(c.hostPorts[0]) },
    ],
    '443/tcp': [
      { HostIp: '0.0.0.0', HostPort: String(c.hostPorts[1]) },
      { HostIp: '::', HostPort: String(c.hostPorts[1]) },
    ],
  };
}

function endpoint(c: BenchContainer) {
  return {
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: '02:42:ac:11:00:02',
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: BRIDGE_NETWORK_ID,
    EndpointID: createHash('sha256').update(`endpoint ${c.index}`).digest('hex'),
    Gateway: '172.17.0.1',
    IPAddress: c.address,
    IPPrefixLen: 16,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
  };
}

/** `GET /containers/{id}/json`, as Docker 28 answers it (the fields that matter, and the bulk). */
export function inspectJson(c: BenchContainer) {
  return {
    Id: c.id,
    Created: CREATED,
    Path: '/bin/httpd',
    Args: ['-f', '-p', '80'],
    State: {
      Status: 'running',
      Running: true,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: 10_000 + c.index,
      ExitCode: 0,
      Error: '',
      StartedAt: CREATED,
      FinishedAt: '0001-01-01T00:00:00Z',
    },
    Image: IMAGE_ID,
    ResolvConfPath: `/var/lib/docker/containers/${c.id}/resolv.conf`,
    HostnamePath: `/var/lib/docker/containers/${c.id}/hostname`,
    HostsPath: `/var/lib/docker/containers/${c.id}/hosts`,
    LogPath: `/var/lib/docker/containers/${c.id}/${c.id}-json.log`,
    Name: `/${c.name}`,
    RestartCount: 0,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: 'docker-default',
    ExecIDs: null,
    HostConfig: {
      Binds: null,
      NetworkMode: 'bridge',
      PortBindings: {
        '80/tcp': [{ HostIp: '', HostPort: String(c.hostPorts[0]) }],
        '443/tcp': [{ HostIp: '', HostPort: String(c.hostPorts[1]) }],
      },
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
      AutoRemove: false,
      CapAdd: null,
      CapDrop: null,
      Dns: [],
      Privileged: false,
      ReadonlyRootfs: false,
      ShmSize: 67_108_864,
      Memory: 0,
      NanoCpus: 0,
      Ulimits: null,
    },
    GraphDriver: {
      Data: { MergedDir: `/var/lib/docker/overlay2/${c.id}/merged` },
      Name: 'overlay2',
    },
    Mounts: [],
    Config: {
      Hostname: c.id.slice(0, 12),
      Domainname: '',
      User: '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      ExposedPorts: { '80/tcp': {}, '443/tcp': {} },
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/httpd', '-f', '-p', '80'],
      Image: 'bench/web:1',
      Volumes: null,
      WorkingDir: '/',
      Entrypoint: null,
      OnBuild: null,
      Labels: c.labels,
    },
    NetworkSettings: {
      Bridge: '',
      SandboxID: createHash('sha256').update(`sandbox ${c.index}`).digest('hex'),
      SandboxKey: `/var/run/docker/netns/${c.id.slice(0, 12)}`,
      Ports: portMap(c),
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: '',
      Gateway: '172.17.0.1',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: c.address,
      IPPrefixLen: 16,
      IPv6Gateway: '',
      MacAddress: '02:42:ac:11:00:02',
      Networks: { bridge: endpoint(c) },
    },
  };
}

/** One element of `GET /containers/json?all=1`. */
export function listJson(c: BenchContainer) {
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: 'bench/web:1',
    ImageID: IMAGE_ID,
    Command: '/bin/httpd -f -p 80',
    Created: 1_767_225_600,
    Ports: [
      { IP: '0.0.0.0', PrivatePort: 80, PublicPort: c.hostPorts[0], Type: 'tcp' },
      { IP: '::', PrivatePort: 80, PublicPort: c.hostPorts[0], Type: 'tcp' },
      { IP: '0.0.0.0', PrivatePort: 443, PublicPort: c.hostPorts[1], Type: 'tcp' },
      { IP: '::', PrivatePort: 443, PublicPort: c.hostPorts[1], Type: 'tcp' },
    ],
    Labels: c.labels,
    State: 'running',
    Status: 'Up 2 hours',
    HostConfig: { NetworkMode: 'bridge' },
    NetworkSettings: { Networks: { bridge: endpoint(c) } },
    Mounts: [],
  };
}

const NETWORKS = JSON.stringify([
  {
    Name: 'bridge',
    Id: BRIDGE_NETWORK_ID,
    Created: CREATED,
    Scope: 'local',
    Driver: 'bridge',
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: {
      'com.docker.network.bridge.default_bridge': 'true',
      'com.docker.network.bridge.enable_icc': 'true',
      'com.docker.network.bridge.enable_ip_masquerade': 'true',
      'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
      'com.docker.network.bridge.name': 'docker0',
      'com.docker.network.driver.mtu': '1500',
    },
    Labels: {},
  },
]);

const VERSION = JSON.stringify({
  Platform: { Name: 'Docker Engine - Community' },
  Version: '28.5.2',
  ApiVersion: '1.51',
  MinAPIVersion: '1.24',
  GitCommit: 'bench',
  GoVersion: 'go1.24.9',
  Os: 'linux',
  Arch: 'amd64',
  KernelVersion: '6.1.0',
});

const INFO = JSON.stringify({
  ID: 'BENCH',
  Containers: 0,
  ServerVersion: '28.5.2',
  Driver: 'overlay2',
  KernelVersion: '6.1.0',
  OperatingSystem: 'Debian GNU/Linux 12 (bookworm)',
  FirewallBackend: { Driver: 'iptables' },
});

/** The engine's state and HTTP handling; `count` containers running from the start. */
export class StandinEngine {
  private readonly inspect = new Map<string, string>();
  private readonly list: string[] = [];
  private readonly streams = new Set<ServerResponse>();
  private next: number;

  constructor(count: number) {
    for (let i = 0; i < count; i++) this.add(benchContainer(i));
    this.next = count;
  }

  private add(c: BenchContainer): void {
    this.inspect.set(c.id, JSON.stringify(inspectJson(c)));
    this.list.push(JSON.stringify(listJson(c)));
  }

  /** Adds one more running container and tells every event stream it started. */
  startOne(): { id: string; address: string; emittedAt: number } {
    const c = benchContainer(this.next++);
    this.add(c);
    const now = Date.now();
    const event = {
      status: 'start',
      id: c.id,
      from: 'bench/web:1',
      Type: 'container',
      Action: 'start',
      Actor: { ID: c.id, Attributes: { image: 'bench/web:1', name: c.name } },
      scope: 'local',
      time: Math.floor(now / 1000),
      timeNano: now * 1_000_000,
    };
    const line = `${JSON.stringify(event)}\n`;
    for (const stream of this.streams) stream.write(line);
    return { id: c.id, address: c.address, emittedAt: Date.now() };
  }

  handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://engine');
    const path = url.pathname.replace(/^\/v[0-9.]+\//, '/');
    const json = (body: string, status = 200): void => {
      response.writeHead(status, {
        'Content-Type': 'application/json',
        'Api-Version': '1.51',
        'Content-Length': Buffer.byteLength(body),
      });
      response.end(body);
    };
    if (path === '/_ping') {
      response.writeHead(200, { 'Content-Type': 'text/plain', 'Api-Version': '1.51' });
      response.end('OK');
    } else if (path === '/version') json(VERSION);
    else if (path === '/info') json(INFO);
    else if (path === '/networks') json(NETWORKS);
    else if (path === '/containers/json') json(`[${this.list.join(',')}]`);
    else if (path === '/events') {
      response.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': '1.51' });
      response.flushHeaders();
      this.streams.add(response);
      response.on('close', () => this.streams.delete(response));
    } else if (path === '/_bench/start' && request.method === 'POST') {
      json(JSON.stringify(this.startOne()));
    } else {
      const id = /^\/containers\/([0-9a-f]{12,64})\/json$/.exec(path)?.[1];
      const body = id === undefined ? undefined : this.inspect.get(id);
      if (body !== undefined) json(body);
      else json(JSON.stringify({ message: `No such container: ${id ?? path}` }), 404);
    }
  }
}

async function main(): Promise<void> {
  const [socket, countText] = process.argv.slice(2);
  if (socket === undefined) throw new Error('usage: standin-engine.js SOCKET COUNT');
  const engine = new StandinEngine(Number(countText ?? 0));
  rmSync(socket, { force: true });
  const server = createServer((req, res) => engine.handle(req, res));
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  process.stdout.write('ready\n');
  const stop = (): void => {
    rmSync(socket, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1]?.endsWith('standin-engine.js') === true) await main();
