import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import { desiredState } from '../policy/desired.js';
import { parseInspect, parseInspectArray } from './inspect.js';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), 'utf8'));

function minimal(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    Id: 'c'.repeat(64),
    Name: '/web',
    State: { Running: true },
    Config: { Labels: { 'dockfw.allow': 'any' } },
    NetworkSettings: {
      Networks: { bridge: { IPAddress: '172.17.0.2', GlobalIPv6Address: '' } },
      Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }], '9000/tcp': null },
    },
    ...overrides,
  };
}

describe('parseInspect', () => {
  it('keeps only the labels that concern dockfw: its own and lookalikes (warned about later)', () => {
    const labels = {
      'dockfw.allow': '203.0.113.0/24',
      'dockfw.allow.53/udp': 'none',
      'DOCKFW.ALLOW': 'any',
      'dokfw.allow.80': 'any',
      'com.docker.compose.project': 'shop',
      'com.docker.compose.config-hash': 'f'.repeat(64),
      'org.opencontainers.image.source': 'https://example.com/shop',
    };
    expect(parseInspect(minimal({ Config: { Labels: labels } })).labels).toEqual({
      'dockfw.allow': '203.0.113.0/24',
      'dockfw.allow.53/udp': 'none',
      'DOCKFW.ALLOW': 'any',
      'dokfw.allow.80': 'any',
    });
    const own = { 'dockfw.allow': 'any' };
    expect(parseInspect(minimal({ Config: { Labels: own } })).labels).toEqual(own);
    expect(
      parseInspect(minimal({ Config: { Labels: { 'com.docker.compose.service': 'web' } } })).labels,
    ).toEqual({});
  });

  it('reads a created container’s fixed host ports (an engine-chosen one is not known yet) and the network mode', () => {
    const created = parseInspect(
      minimal({
        State: { Running: false, Status: 'created' },
        HostConfig: {
          NetworkMode: 'bridge',
          PortBindings: {
            '80/tcp': [{ HostIp: '', HostPort: '8080' }],
            '81/tcp': [{ HostIp: '', HostPort: '' }],
            '53/udp': [{ HostIp: '198.51.100.1', HostPort: '5353' }],
            '82/tcp': [{ HostIp: '', HostPort: '8000-8010' }],
          },
        },
        NetworkSettings: { Networks: {}, Ports: {} },
      }),
    );
    expect(created).toMatchObject({ running: false, created: true, networkMode: 'bridge', ports: [] });
    expect(created.plannedPorts).toEqual([
      { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 },
      { containerPort: 53, protocol: 'udp', hostIp: '198.51.100.1', hostPort: 5353 },
    ]);
    // A host port range (`-p 8000-8010:82`) is read, not refused: a running container with it
    // must never be left out (its docker-proxy path would go unjudged).
    const running = parseInspect(
      minimal({ HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8000-8010' }] } } }),
    );
    expect(running.ports).toEqual([
      { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
    ]);
    // Exited: nothing planned (its ports are released)...
    const exited = parseInspect(minimal({ State: { Running: false, Status: 'exited' } }));
    expect(exited.created).toBeUndefined();
    // ...unless the engine will start it again (a restarting engine lists it exited first).
    const restarting = parseInspect(
      minimal({
        State: { Running: false, Status: 'exited' },
        HostConfig: {
          RestartPolicy: { Name: 'always' },
          PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '9201' }] },
        },
        NetworkSettings: { Networks: {}, Ports: {} },
      }),
    );
    expect(restarting.created).toBe(true);
    expect(restarting.plannedPorts).toEqual([
      { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 9201 },
    ]);
    expect(parseInspect(minimal({ HostConfig: { NetworkMode: 'host' } })).networkMode).toBe('host');
  });

  it('keeps the fixed host ports of a running container only while its live bindings are missing', () => {
    const fixed = { HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] } } };
    // Live bindings there: they are the engine's word, the configured ones are not kept.
    const live = parseInspect(minimal(fixed));
    expect(live.ports).not.toEqual([]);
    expect(live.plannedPorts).toBeUndefined();
    // A restarted engine that has not filled them in yet: the configured ones stand in.
    const filling = parseInspect(minimal({ ...fixed, NetworkSettings: { Networks: {}, Ports: {} } }));
    expect(filling.ports).toEqual([]);
    expect(filling.plannedPorts).toEqual([
      { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 },
    ]);
    // What is kept is what the planner judges: the configured port while the live ones are
    // missing, the live one after (here the engine chose another host port, 9090).
    const judged = (snapshot: typeof live): number[] =>
      desiredState({ containers: [snapshot], bridges: [] }, loadConfig({})).bindings.map((b) => b.portFrom);
    expect(judged(filling)).toEqual([8080, 8080]);
    const moved = parseInspect(
      minimal({
        ...fixed,
        NetworkSettings: {
          Networks: { bridge: { IPAddress: '172.17.0.2' } },
          Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '9090' }] },
        },
      }),
    );
    expect(judged(moved)).toEqual([9090]);
  });

  it('reads the fields dockfw needs', () => {
    expect(parseInspect(minimal())).toEqual({
      id: 'c'.repeat(64),
      name: 'web',
      running: true,
      labels: { 'dockfw.allow': 'any' },
      networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 }],
    });
  });

  it('accepts null labels, networks and ports (host network, stopped containers)', () => {
    const parsed = parseInspect(
      minimal({ Config: { Labels: null }, NetworkSettings: { Networks: null, Ports: null } }),
    );
    expect(parsed).toMatchObject({ labels: {}, networks: [], ports: [] });
  });

  it.each([
    ['a short id', { Id: 'abc' }],
    ['a bad address', { NetworkSettings: { Networks: { bridge: { IPAddress: '172.17.0.2; rm' } } } }],
    ['a bad IPv6 address', { NetworkSettings: { Networks: { bridge: { GlobalIPv6Address: '1.2.3.4' } } } }],
    ['a bad port key', { NetworkSettings: { Ports: { '80/icmp': null } } }],
    ['a port out of range', { NetworkSettings: { Ports: { '70000/tcp': null } } }],
    ['no State', { State: undefined }],
  ])('rejects %s', (_what, overrides) => {
    expect(() => parseInspect(minimal(overrides))).toThrow();
  });

  it('reads every container of the example fixture', () => {
    const containers = parseInspectArray(fixture('example-inspect.json'));
    expect(containers.map((c) => [c.name, c.running, c.networks.length, c.ports.length])).toEqual([
      ['shop-web-1', true, 1, 4],
      ['shop-admin-1', true, 2, 2],
      ['shop-db-1', true, 1, 0],
      ['metrics', true, 1, 2],
      ['legacy-app', true, 1, 2],
      ['old-job', false, 1, 0],
    ]);
    expect(containers[0]?.networks).toEqual([
      { network: 'shop_front', ipv4: '172.20.0.2', ipv6: 'fd00:20::2' },
    ]);
  });

  it('rejects something that is not an array', () => {
    expect(() => parseInspectArray(minimal())).toThrow('expected a JSON array');
  });

  it('names the element and the field that is wrong', () => {
    const bad = minimal({ NetworkSettings: { Networks: { bridge: { IPAddress: '300.1.1.1' } } } });
    expect(() => parseInspectArray([minimal(), bad])).toThrow(
      'container 1 ("/web"): NetworkSettings.Networks.bridge.IPAddress: not an IPv4 address',
    );
  });
});
