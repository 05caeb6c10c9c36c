import { GenericContainer, getContainerRuntimeClient, Wait, type StartedTestContainer } from 'testcontainers';
import { parsePortSpec, type PortSpec } from './ports.js';

/** Image imported into every test engine by startTestHost (no registry here). */
export const TEST_IMAGE = 'dfw-busybox:local';

export interface RunContainerOptions {
  name: string;
  /** `docker run -p` syntax: '8080:80', '198.51.100.1:8081:80/udp', '[2001:db8:1::1]:8080:80'. */
  ports?: string[];
  labels?: Record<string, string>;
  network?: string;
  restart?: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  env?: Record<string, string>;
}

/** GenericContainer with full `-p` bindings (host IP included), a restart policy and no pulls. */
class TestImageContainer extends GenericContainer {
  constructor(ports: PortSpec[], restart: string) {
    super(TEST_IMAGE);
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of ports) {
      const key = `${p.containerPort}/${p.proto}`;
      exposed[key] = {};
      bindings[key] = [...(bindings[key] ?? []), { HostIp: p.hostIp, HostPort: String(p.hostPort) }];
    }
    this.createOpts.ExposedPorts = exposed;
    this.hostConfig.PortBindings = bindings;
    this.hostConfig.RestartPolicy = { Name: restart };
    this.createOpts.StopTimeout = 2;
  }
}

/** Which container ports the image's /bin/serve must listen on. */
export function servedPorts(ports: PortSpec[]): { tcp: string; udp: string } {
  const list = (proto: 'tcp' | 'udp', fallback: number) => {
    const wanted = [...new Set(ports.filter((p) => p.proto === proto).map((p) => p.containerPort))];
    return (wanted.length > 0 ? wanted : [fallback]).join(' ');
  };
  return { tcp: list('tcp', 80), udp: list('udp', 53) };
}

let boundSocket: string | undefined;

/**
 * Starts a container with testcontainers. testcontainers keeps ONE engine client
 * per process (chosen from DOCKER_HOST at first use), so a process can only run
 * containers on one test host: use one test host per test file.
 */
export async function runWithTestcontainers(
  dockerSocket: string,
  options: RunContainerOptions,
): Promise<StartedTestContainer> {
  if (boundSocket !== undefined && boundSocket !== dockerSocket) {
    throw new Error(
      'testcontainers is already bound to another test host in this process; use one test host per test file',
    );
  }
  boundSocket = dockerSocket;
  process.env.DOCKER_HOST = `unix://${dockerSocket}`;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';

  // testcontainers reads back each published port for the families of its host
  // ("localhost": IPv4 only) and fails on a port bound to one IPv6 address; the
  // engine is reachable through its socket either way, so know both families.
  const client = await getContainerRuntimeClient();
  const hostIps = client.info.containerRuntime.hostIps;
  if (!hostIps.some((ip) => ip.family === 4)) hostIps.push({ address: '127.0.0.1', family: 4 });
  if (!hostIps.some((ip) => ip.family === 6)) hostIps.push({ address: '::1', family: 6 });

  const ports = (options.ports ?? []).map(parsePortSpec);
  const served = servedPorts(ports);
  let container = new TestImageContainer(ports, options.restart ?? 'no')
    .withName(options.name)
    .withLabels(options.labels ?? {})
    .withEnvironment({ SERVE_TCP: served.tcp, SERVE_UDP: served.udp, ...options.env })
    .withPullPolicy({ shouldPull: () => false })
    // The published ports live in the engine's namespace, out of this process's
    // reach, so readiness is checked inside the container.
    .withWaitStrategy(Wait.forSuccessfulCommand('/bin/ready'))
    .withStartupTimeout(20_000);
  if (options.network !== undefined) container = container.withNetworkMode(options.network);
  return container.start();
}
