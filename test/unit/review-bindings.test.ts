// Review: the published-binding layer must never judge one container's binding
// by another container's labels. Where the binding layer is the only judge
// (docker-proxy: IPv6 clients of an IPv4-only network, or IPv4 while Docker's
// DNAT is missing), a missing or foreign binding means an open port.
import { describe, expect, it } from 'vitest';
import { familySets } from '../../src/backends/iptables/sets.js';
import { tableSpec } from '../../src/backends/nftables/elements.js';
import { loadConfig } from '../../src/config/config.js';
import { readEngineSnapshot } from '../../src/docker/container-cache.js';
import { FakeDockerClient } from '../../src/docker/fake-docker-client.js';
import type { ContainerSnapshot } from '../../src/docker/snapshot.js';
import { parseIPv6 } from '../../src/net/ip.js';
import { desiredState, type DesiredBinding } from '../../src/policy/desired.js';

const allow = loadConfig({});
const ID = (c: string) => c.repeat(64);

/** An IPv4-only container publishing container port 80 on one IPv6 host address (docker-proxy only). */
const admin: ContainerSnapshot = {
  id: ID('a'),
  name: 'admin',
  running: true,
  labels: { 'dockfw.allow': '2001:db8::10' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '2001:db8::2', hostPort: 80 }],
};

const V6 = (text: string): bigint => {
  const value = parseIPv6(text);
  if (value === undefined) throw new Error(text);
  return value;
};

/**
 * What the binding layer does with one IPv6 packet, as the kernel would: a binding on
 * the packet's host address, else one on every address, decides; none: not judged here.
 */
function bindingVerdict(bindings: readonly DesiredBinding[], to: string, port: number, from: string) {
  const covering = bindings.filter(
    (b) => b.family === 6 && b.protocol === 'tcp' && b.portFrom <= port && port <= b.portTo,
  );
  const binding =
    covering.find((b) => b.hostAddress === to) ?? covering.find((b) => b.hostAddress === undefined);
  if (binding === undefined) return 'not judged';
  if (binding.sources === 'any') return 'allowed';
  const source = V6(from);
  return binding.sources.some((i) => i.start <= source && source <= i.end) ? 'allowed' : 'dropped';
}

/** admin's binding lets 2001:db8::10 in and no one else. */
function expectAdminJudged(bindings: readonly DesiredBinding[]): void {
  expect(bindingVerdict(bindings, '2001:db8::2', 80, '2001:db8::10')).toBe('allowed');
  expect(bindingVerdict(bindings, '2001:db8::2', 80, '2001:db8::66')).toBe('dropped');
}

describe('review: a binding is judged by its own container only', () => {
  it('a host-network container labelled for the same port does not open another container’s specific binding', () => {
    // A reverse proxy on the host network, listening on another host address, open to all.
    const edge: ContainerSnapshot = {
      id: ID('b'),
      name: 'edge',
      running: true,
      networkMode: 'host',
      labels: { 'dockfw.allow.80': 'any' },
      networks: [{ network: 'host' }],
      ports: [],
    };
    const desired = desiredState({ containers: [admin, edge], bridges: ['docker0'] }, allow);
    expectAdminJudged(desired.bindings);
    // What reaches the kernel: port 80 lets 2001:db8::10 on and drops everyone else.
    const sets = familySets(desired, 6);
    const port80 = (role: 'boundip' | 'boundany' | 'bound') =>
      [...(sets.get(role) ?? [])].filter((e) => e.includes(',tcp:80'));
    // Every address of port 80 lets 2001:db8::10 on; the binding is judged (the rest dropped).
    expect([...port80('boundany'), ...port80('boundip')]).toEqual(['2001:db8::10,tcp:80']);
    expect(port80('bound')).toEqual(['::/1,tcp:80', '8000::/1,tcp:80']);
    expect(tableSpec(desired).sets.get('boundallowed6')).toEqual(['80 . tcp . ::/0 . 2001:db8::10']);
  });

  it('a created container that never started does not replace a running container’s binding', () => {
    const spare: ContainerSnapshot = {
      id: ID('c'),
      name: 'spare',
      running: false,
      created: true,
      labels: { 'dockfw.allow': 'any' },
      networks: [],
      ports: [],
      plannedPorts: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 80 }],
    };
    const desired = desiredState({ containers: [admin, spare], bridges: ['docker0'] }, allow);
    expectAdminJudged(desired.bindings);
  });
});

/** `docker run -p 8000-8010:80 --label dockfw.allow=2001:db8::10` (IPv4-only network), as inspect shows it. */
function rangeInspect(): unknown {
  return {
    Id: ID('d'),
    Name: '/ranged',
    State: { Running: true, Status: 'running' },
    Config: { Labels: { 'dockfw.allow': '2001:db8::10' } },
    HostConfig: {
      NetworkMode: 'bridge',
      // The CLI and compose keep a host port range for one container port as one binding.
      PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8000-8010' }] },
    },
    NetworkSettings: {
      Networks: { bridge: { IPAddress: '172.17.0.3', GlobalIPv6Address: '' } },
      Ports: {
        '80/tcp': [
          { HostIp: '0.0.0.0', HostPort: '8003' },
          { HostIp: '::', HostPort: '8003' },
        ],
      },
    },
  };
}

describe('review: a container whose inspect has a host port range is still judged', () => {
  it('reads the container (the published port is the one in NetworkSettings.Ports)', async () => {
    const client = new FakeDockerClient();
    client.containers.set(ID('d'), rangeInspect());
    const unreadable: string[] = [];
    const snapshot = await readEngineSnapshot(client, (id) => unreadable.push(id));
    expect(unreadable).toEqual([]);
    const desired = desiredState(snapshot, allow);
    // [::]:8003 reaches the IPv4-only container through docker-proxy only: the binding must judge it.
    expect(desired.bindings).toContainEqual(
      expect.objectContaining({ containerId: ID('d'), family: 6, hostAddress: undefined, portFrom: 8003 }),
    );
  });
});
