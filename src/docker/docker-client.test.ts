import { describe, expect, it } from 'vitest';
import { readEngineSnapshot } from './container-cache.js';
import { bridgeName, bridgeNames, listStamp } from './docker-client.js';
import { mayHaveEndpoints, parseDockerHost } from './dockerode-client.js';
import { FakeDockerClient, inspectJson } from './fake-docker-client.js';

const ID = (c: string) => c.repeat(64);

describe('bridgeName', () => {
  it('follows the engine: configured name, docker0 for "bridge", else br-<id12>', () => {
    expect(bridgeName({ Id: ID('a'), Name: 'bridge', Driver: 'bridge', Options: {} })).toBe('docker0');
    expect(
      bridgeName({
        Id: ID('a'),
        Name: 'bridge',
        Driver: 'bridge',
        Options: { 'com.docker.network.bridge.name': 'docker1' },
      }),
    ).toBe('docker1');
    expect(
      bridgeName({
        Id: `0123456789ab${'c'.repeat(52)}`,
        Name: 'app_default',
        Driver: 'bridge',
        Options: null,
      }),
    ).toBe('br-0123456789ab');
    expect(bridgeName({ Id: ID('a'), Name: 'host', Driver: 'host' })).toBeUndefined();
    expect(bridgeName({ Id: ID('a'), Name: 'none', Driver: 'null' })).toBeUndefined();
  });

  it('lists each bridge once, sorted', () => {
    const networks = [
      { Id: ID('b'), Name: 'web', Driver: 'bridge' },
      { Id: ID('a'), Name: 'bridge', Driver: 'bridge' },
      { Id: ID('c'), Name: 'ov', Driver: 'overlay' },
    ];
    expect(bridgeNames(networks)).toEqual(['br-bbbbbbbbbbbb', 'docker0']);
  });
});

describe('readEngineSnapshot', () => {
  it('adds a Swarm task’s docker_gwbridge address, which only that network’s endpoint list holds', async () => {
    const docker = new FakeDockerClient();
    docker.containers.set(ID('a'), inspectJson({ id: ID('a'), name: 'task', ipv4: '10.0.1.5' }));
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'plain' }));
    const gw = { Id: ID('9'), Name: 'docker_gwbridge', Driver: 'bridge', Options: {} };
    docker.networks = [...docker.networks, gw];
    docker.networkDetails.set(ID('9'), {
      Containers: {
        [ID('a')]: { IPv4Address: '172.18.0.3/16', IPv6Address: '' },
        'ingress-sbox': { IPv4Address: '172.18.0.2/16' },
      },
    });
    const snapshot = await readEngineSnapshot(docker);
    expect(snapshot.containers.find((c) => c.name === 'task')?.networks).toEqual([
      { network: 'bridge', ipv4: '10.0.1.5' },
      { network: 'docker_gwbridge', ipv4: '172.18.0.3' },
    ]);
    expect(snapshot.containers.find((c) => c.name === 'plain')?.networks).toEqual([
      { network: 'bridge', ipv4: '172.17.0.2' },
    ]);
    // An unreadable endpoint list adds nothing (the catch-all keeps such a task closed).
    docker.networkDetails.set(ID('9'), { Containers: 'garbage' });
    const unread = await readEngineSnapshot(docker);
    expect(unread.containers.find((c) => c.name === 'task')?.networks).toHaveLength(1);
  });

  it('lists, inspects each container, and skips one that vanished in between', async () => {
    const docker = new FakeDockerClient();
    docker.containers.set(ID('1'), inspectJson({ id: ID('1'), name: 'one' }));
    docker.containers.set(ID('2'), inspectJson({ id: ID('2'), name: 'two' }));
    docker.vanishing.add(ID('1'));
    const snapshot = await readEngineSnapshot(docker);
    expect(snapshot.containers.map((c) => c.name)).toEqual(['two']);
    expect(snapshot.bridges).toEqual(['docker0']);
    expect(docker.calls.filter((c) => c.startsWith('inspect'))).toHaveLength(2);
  });

  it('leaves out and reports a container whose inspect data it cannot read', async () => {
    const docker = new FakeDockerClient();
    docker.containers.set(ID('1'), { Id: 'not-an-id' });
    docker.containers.set(ID('2'), inspectJson({ id: ID('2'), name: 'two' }));
    const unreadable: string[] = [];
    const snapshot = await readEngineSnapshot(docker, (id) => unreadable.push(id));
    expect(snapshot.containers.map((c) => c.name)).toEqual(['two']);
    expect(unreadable).toEqual([ID('1')]);
  });

  it('fails when the engine is unreachable', async () => {
    const docker = new FakeDockerClient();
    docker.reachable = false;
    await expect(readEngineSnapshot(docker)).rejects.toThrow(/ENOENT/);
  });
});

describe('parseDockerHost', () => {
  it('understands unix sockets, with the default when unset', () => {
    expect(parseDockerHost(undefined)).toEqual({ kind: 'unix', socketPath: '/var/run/docker.sock' });
    expect(parseDockerHost('unix:///tmp/d/docker.sock')).toEqual({
      kind: 'unix',
      socketPath: '/tmp/d/docker.sock',
    });
  });

  it('understands tcp, http and https, with TLS from DOCKER_TLS_VERIFY', () => {
    expect(parseDockerHost('tcp://10.0.0.1:2375')).toEqual({
      kind: 'tcp',
      host: '10.0.0.1',
      port: 2375,
      tls: false,
    });
    expect(parseDockerHost('tcp://docker.example:2376', '1')).toEqual({
      kind: 'tcp',
      host: 'docker.example',
      port: 2376,
      tls: true,
    });
    expect(parseDockerHost('https://[2001:db8::5]')).toEqual({
      kind: 'tcp',
      host: '2001:db8::5',
      port: 2376,
      tls: true,
    });
    expect(parseDockerHost('http://h')).toEqual({ kind: 'tcp', host: 'h', port: 2375, tls: false });
  });

  it('understands ssh with a user', () => {
    expect(parseDockerHost('ssh://ops@h:2222')).toEqual({
      kind: 'ssh',
      host: 'h',
      port: 2222,
      username: 'ops',
    });
  });

  it('rejects what it cannot connect to, naming the value', () => {
    expect(() => parseDockerHost('npipe:////./pipe/docker_engine')).toThrow(/npipe.*not supported/);
    expect(() => parseDockerHost('fd://')).toThrow(/not supported/);
  });
});

describe('mayHaveEndpoints', () => {
  it('keeps running, paused and restarting containers, skips stopped ones', () => {
    expect(['running', 'paused', 'restarting', 'removing'].map(mayHaveEndpoints)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(mayHaveEndpoints('dead')).toBe(false);
    // Created, or exited (with a restart policy, about to be started again): fixed host ports known before.
    expect(['created', 'exited'].map(mayHaveEndpoints)).toEqual([true, true]);
  });
});

describe('listStamp', () => {
  const element = {
    Names: ['/web'],
    State: 'running',
    Status: 'Up 2 minutes',
    Labels: { 'dockfw.allow': '203.0.113.5' },
    Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }],
    HostConfig: { NetworkMode: 'bridge' },
    NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.2', EndpointID: 'e1' } } },
  };

  it('changes with what a snapshot depends on', () => {
    const changed = [
      { ...element, Names: ['/renamed'] },
      { ...element, State: 'paused' },
      { ...element, Ports: [] },
      { ...element, HostConfig: { NetworkMode: 'host' } },
      {
        ...element,
        NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.3', EndpointID: 'e1' } } },
      },
      {
        ...element,
        NetworkSettings: {
          Networks: {
            bridge: { IPAddress: '172.17.0.2', GlobalIPv6Address: '2001:db8::2', EndpointID: 'e1' },
          },
        },
      },
      {
        ...element,
        NetworkSettings: { Networks: { other: { IPAddress: '172.17.0.2', EndpointID: 'e1' } } },
      },
      { ...element, NetworkSettings: { Networks: {} } },
    ];
    const stamps = new Set([element, ...changed].map(listStamp));
    expect(stamps.size).toBe(changed.length + 1);
  });

  it('stays the same as the status text ticks, and leaves out the labels (fixed for a container id)', () => {
    const ticked = { ...element, Status: 'Up 3 minutes' };
    const unlabeled = { ...element, Labels: {} };
    expect(listStamp(ticked)).toBe(listStamp(element));
    expect(listStamp(unlabeled)).toBe(listStamp(element));
  });

  it('leaves out what the snapshot does not keep of an endpoint (a reconnect with the same address)', () => {
    const reconnected = {
      ...element,
      NetworkSettings: {
        Networks: { bridge: { IPAddress: '172.17.0.2', EndpointID: 'e2', MacAddress: '02:42:ac:11:00:02' } },
      },
    };
    expect(listStamp(reconnected)).toBe(listStamp(element));
  });
});
