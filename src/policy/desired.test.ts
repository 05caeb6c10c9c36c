import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import type { ContainerSnapshot } from '../docker/snapshot.js';
import { desiredState, formatLabelError, formatLabelWarning } from './desired.js';

function container(name: string, overrides: Partial<ContainerSnapshot> = {}): ContainerSnapshot {
  return {
    id: `${name.charCodeAt(0).toString(16)}`.padEnd(64, '0'),
    name,
    running: true,
    labels: {},
    networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
    ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
    ...overrides,
  };
}

const allow = loadConfig({});
const deny = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });

describe('desiredState', () => {
  it('covers running containers with published ports only', () => {
    const state = desiredState(
      {
        containers: [
          container('stopped', { running: false }),
          container('quiet', { ports: [] }),
          container('web'),
        ],
        bridges: [],
      },
      allow,
    );
    expect(state.containers.map((c) => c.name)).toEqual(['web']);
    expect(state.rules.map((r) => r.containerName)).toEqual(['web']);
  });

  it('applies the default policy to unlabeled containers', () => {
    const snapshot = { containers: [container('web')], bridges: [] };
    expect(desiredState(snapshot, allow).rules[0]?.sources).toBe('any');
    expect(desiredState(snapshot, allow).containers[0]?.state).toBe('default-allow');
    expect(desiredState(snapshot, deny).rules[0]?.sources).toEqual([]);
    expect(desiredState(snapshot, deny).containers[0]?.state).toBe('default-deny');
  });

  it('closes every port of a container with an invalid label, and reports it', () => {
    const state = desiredState(
      {
        containers: [
          container('web', {
            labels: { 'dockfw.allow': 'any', 'dockfw.allow.443': '10.0.0.0/33' },
            ports: [
              { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 80 },
              { containerPort: 443, protocol: 'tcp', hostIp: '', hostPort: 443 },
            ],
          }),
          container('quiet', { labels: { 'dockfw.typo': 'x' }, ports: [] }),
        ],
        bridges: [],
      },
      allow,
    );
    expect(state.rules.map((r) => [r.portFrom, r.portTo, r.sources])).toEqual([
      [80, 80, []],
      [443, 443, []],
    ]);
    expect(state.containers[0]).toMatchObject({ state: 'closed-invalid-label' });
    expect(state.errors.map(formatLabelError)).toEqual([
      'quiet: dockfw.typo: unknown label; dockfw knows dockfw.allow and dockfw.allow.<port>',
      'web: dockfw.allow.443: "10.0.0.0/33": prefix length must be 0-32',
    ]);
  });

  it('makes one rule per container address and port, whatever the host bindings', () => {
    const state = desiredState(
      {
        containers: [
          container('web', {
            labels: { 'dockfw.allow': '203.0.113.0/24, 2001:db8::/32' },
            networks: [
              { network: 'front', ipv4: '172.20.0.2', ipv6: 'FD00:0:0::2' },
              { network: 'back', ipv4: '172.19.0.9' },
            ],
            ports: [
              { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 80 },
              { containerPort: 80, protocol: 'tcp', hostIp: '::', hostPort: 80 },
              { containerPort: 80, protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 8080 },
            ],
          }),
        ],
        bridges: [],
      },
      allow,
    );
    expect(state.rules.map((r) => [r.family, r.address, r.portFrom])).toEqual([
      [4, '172.19.0.9', 80],
      [4, '172.20.0.2', 80],
      [6, 'fd00::2', 80],
    ]);
    expect(state.rules[0]?.sources).toEqual([{ start: 0xcb007100n, end: 0xcb0071ffn }]);
    expect(state.rules[2]?.sources).toEqual([
      { start: 0x20010db8n << 96n, end: ((0x20010db8n + 1n) << 96n) - 1n },
    ]);
    expect(state.containers[0]?.addresses).toEqual(['172.19.0.9', '172.20.0.2', 'fd00::2']);
  });

  it('joins consecutive ports with the same sources into one rule', () => {
    const ports = [8000, 8001, 8002, 8003, 8005].map((p) => ({
      containerPort: p,
      protocol: 'tcp' as const,
      hostIp: '',
      hostPort: p,
    }));
    const state = desiredState(
      {
        containers: [
          container('media', {
            labels: { 'dockfw.allow': 'any', 'dockfw.allow.8002': '203.0.113.1' },
            ports: [...ports, { containerPort: 8004, protocol: 'udp', hostIp: '', hostPort: 8004 }],
          }),
        ],
        bridges: [],
      },
      allow,
    );
    expect(state.rules.map((r) => `${r.portFrom}-${r.portTo}/${r.protocol}`)).toEqual([
      '8000-8001/tcp',
      '8002-8002/tcp',
      '8003-8003/tcp',
      '8005-8005/tcp',
      '8004-8004/udp',
    ]);
  });

  it('sorts containers by name, then id, and de-duplicates bridges, dropping unusable names', () => {
    const state = desiredState(
      {
        containers: [
          container('b'),
          { ...container('a'), id: 'f'.repeat(64) },
          { ...container('a'), id: 'e'.repeat(64) },
        ],
        bridges: ['docker0', 'br-1', 'docker0', 'br+', 'bad name', 'x'.repeat(16)],
      },
      allow,
    );
    expect(state.containers.map((c) => `${c.name}:${c.id[0]}`)).toEqual(['a:e', 'a:f', 'b:6']);
    expect(state.bridges).toEqual(['br-1', 'docker0']);
  });

  it('summarises each port with where its answer came from', () => {
    const state = desiredState(
      {
        containers: [
          container('web', {
            labels: { 'dockfw.allow.443': '203.0.113.5-203.0.113.9' },
            ports: [
              { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 80 },
              { containerPort: 443, protocol: 'tcp', hostIp: '', hostPort: 443 },
            ],
          }),
        ],
        bridges: [],
      },
      deny,
    );
    expect(state.containers[0]?.ports).toEqual([
      { port: 80, protocol: 'tcp', allow: 'none', origin: 'default' },
      {
        port: 443,
        protocol: 'tcp',
        allow: '203.0.113.5-203.0.113.9',
        origin: 'label',
        label: 'dockfw.allow.443',
      },
    ]);
    expect(state.containers[0]?.state).toBe('enforced');
  });

  it('warns about lookalike label keys, which leave the port to the default policy', () => {
    const snapshot = {
      containers: [
        container('web', { labels: { 'DOCKFW.ALLOW': 'none' } }),
        container('quiet', { ports: [] }),
      ],
      bridges: [],
    };
    const state = desiredState(snapshot, allow);
    expect(state.containers[0]?.ports[0]).toMatchObject({ origin: 'default', allow: 'any' });
    expect(state.warnings?.map(formatLabelWarning)).toEqual([
      'web: label "DOCKFW.ALLOW" is not a dockfw label (keys are case-sensitive: did you mean "dockfw.allow"?)',
    ]);
    expect(state.errors).toEqual([]);
  });

  it('names dockfw.allow when it decides a port', () => {
    const snapshot = { containers: [container('web', { labels: { 'dockfw.allow': 'none' } })], bridges: [] };
    expect(desiredState(snapshot, allow).containers[0]?.ports[0]).toMatchObject({
      origin: 'label',
      label: 'dockfw.allow',
    });
  });

  it('treats 0.0.0.0/0 and ::/0 as any, per family', () => {
    const state = desiredState(
      {
        containers: [
          container('web', {
            labels: { 'dockfw.allow': '0.0.0.0/0, 2001:db8::/32' },
            networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: 'fd00::2' }],
          }),
        ],
        bridges: [],
      },
      deny,
    );
    expect(state.rules.map((r) => [r.family, r.sources === 'any'])).toEqual([
      [4, true],
      [6, false],
    ]);
  });
});

describe('desiredState: published bindings (judged on the host address and port)', () => {
  const V4_ONLY = { 'dockfw.allow': '203.0.113.11' };

  it('one binding per family and host address, every-address for 0.0.0.0, :: and an empty HostIp', () => {
    const web = container('web', {
      labels: V4_ONLY,
      ports: [
        { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
        { containerPort: 80, protocol: 'tcp', hostIp: '::', hostPort: 8080 },
        { containerPort: 53, protocol: 'udp', hostIp: '', hostPort: 5353 },
        { containerPort: 443, protocol: 'tcp', hostIp: '198.51.100.1', hostPort: 8443 },
      ],
    });
    const { bindings } = desiredState({ containers: [web], bridges: [] }, allow);
    expect(bindings.map((b) => [b.family, b.hostAddress ?? '*', b.protocol, b.portFrom])).toEqual([
      [4, '*', 'tcp', 8080],
      [4, '*', 'udp', 5353],
      [4, '198.51.100.1', 'tcp', 8443],
      [6, '*', 'tcp', 8080],
      [6, '*', 'udp', 5353],
    ]);
    // An IPv4-only list closes the IPv6 bindings (docker-proxy carries IPv6 to an IPv4-only container).
    expect(bindings.filter((b) => b.family === 6).map((b) => b.sources)).toEqual([[], []]);
    expect(bindings.filter((b) => b.family === 4).every((b) => b.sources !== 'any')).toBe(true);
  });

  it('takes the sources of the container port the host port maps to, per-port labels included', () => {
    const web = container('web', {
      labels: { 'dockfw.allow': 'none', 'dockfw.allow.443': 'any' },
      ports: [
        { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 9443 },
        { containerPort: 443, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 9080 },
      ],
    });
    const { bindings } = desiredState({ containers: [web], bridges: [] }, allow);
    expect(bindings.map((b) => [b.portFrom, b.sources])).toEqual([
      [9080, 'any'],
      [9443, []],
    ]);
  });

  it('an invalid label closes every binding; policy deny closes unlabeled ones; ephemeral (0) host ports are left out', () => {
    const bad = container('bad', { labels: { 'dockfw.allow': '10.0.0.0/33' } });
    const open = container('open', {
      ports: [
        { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8081 },
        { containerPort: 81, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 0 },
      ],
    });
    const state = desiredState({ containers: [bad, open], bridges: [] }, deny);
    expect(state.bindings.map((b) => [b.containerName, b.family, b.portFrom, b.sources])).toEqual([
      ['bad', 4, 8080, []],
      ['open', 4, 8081, []],
      ['bad', 6, 8080, []],
    ]);
  });

  it('one verdict per host port: claims that meet there intersect, an every-address binding covers the specific ones', () => {
    const a = container('a', {
      labels: V4_ONLY,
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 }],
    });
    const b = container('b', {
      labels: { 'dockfw.allow': 'any' },
      ports: [
        { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
        { containerPort: 80, protocol: 'tcp', hostIp: '203.0.113.1', hostPort: 8080 },
      ],
    });
    const { bindings } = desiredState({ containers: [b, a], bridges: [] }, allow);
    expect(bindings.map((x) => [x.containerName, x.hostAddress ?? '*', x.portFrom, x.sources])).toEqual([
      ['a', '*', 8080, [{ start: 0xcb00710bn, end: 0xcb00710bn }]],
    ]);
  });

  it('a host-network label or a created container on the same port can only narrow a running binding', () => {
    const admin = container('admin', {
      labels: { 'dockfw.allow': '2001:db8::10' },
      networks: [{ network: 'bridge', ipv4: '172.17.0.5' }],
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '2001:db8::2', hostPort: 80 }],
    });
    const proxy = container('a-proxy', {
      networkMode: 'host',
      networks: [{ network: 'host' }],
      ports: [],
      labels: { 'dockfw.allow.80': 'any' },
    });
    const spare = container('b-spare', {
      running: false,
      created: true,
      ports: [],
      plannedPorts: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 80 }],
    });
    const { bindings } = desiredState({ containers: [proxy, spare, admin], bridges: [] }, allow);
    const v6 = bindings.filter((x) => x.family === 6);
    expect(v6.map((x) => [x.hostAddress ?? '*', x.portFrom, x.sources])).toEqual([
      ['*', 80, [{ start: 0x20010db8000000000000000000000010n, end: 0x20010db8000000000000000000000010n }]],
    ]);
  });

  it('a running container whose live bindings are not filled in yet (engine restart) is judged on its configured ones', () => {
    const web = container('web', {
      labels: V4_ONLY,
      ports: [],
      plannedPorts: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
    });
    const { bindings } = desiredState({ containers: [web], bridges: [] }, allow);
    expect(bindings.map((x) => [x.family, x.portFrom])).toEqual([
      [4, 8080],
      [6, 8080],
    ]);
    // Once the engine lists live bindings, those are its word.
    const live = {
      ...web,
      ports: [{ containerPort: 80, protocol: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 8080 }],
    };
    expect(desiredState({ containers: [live], bridges: [] }, allow).bindings.map((x) => x.family)).toEqual([
      4,
    ]);
  });

  it('joins consecutive host ports of one container with the same sources into a range', () => {
    const ports = [8000, 8001, 8002, 8004].map((hostPort, i) => ({
      containerPort: 80 + i,
      protocol: 'tcp' as const,
      hostIp: '0.0.0.0',
      hostPort,
    }));
    const { bindings } = desiredState(
      { containers: [container('web', { labels: V4_ONLY, ports })], bridges: [] },
      allow,
    );
    expect(bindings.map((b) => [b.portFrom, b.portTo])).toEqual([
      [8000, 8002],
      [8004, 8004],
    ]);
  });
});

describe('desiredState: containers not started yet, and the host network', () => {
  it('judges a created container’s fixed host ports before it starts; a running one wins a shared port', () => {
    const planned = [{ containerPort: 80, protocol: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 8080 }];
    const next = container('next', {
      running: false,
      created: true,
      labels: { 'dockfw.allow': '203.0.113.11' },
      ports: [],
      plannedPorts: [...planned, { ...planned[0]!, hostPort: 8081 }],
    });
    const old = container('old', { labels: { 'dockfw.allow': 'none' }, ports: planned });
    const state = desiredState({ containers: [next, old], bridges: [] }, allow);
    expect(state.bindings.map((b) => [b.containerName, b.portFrom])).toEqual([
      ['old', 8080],
      ['next', 8081],
    ]);
    // Nothing else about it yet: no address rules, no summary.
    expect(state.rules.map((r) => r.containerName)).toEqual(['old']);
    expect(state.containers.map((c) => c.name)).toEqual(['old']);
    // An exited container holds nothing.
    const exited = { ...next, created: false };
    expect(desiredState({ containers: [exited], bridges: [] }, allow).bindings).toEqual([]);
  });

  it('a host-network container: the ports its labels name, every address, both families; nothing else', () => {
    const proxy = container('proxy', {
      networkMode: 'host',
      networks: [{ network: 'host' }],
      ports: [],
      labels: { 'dockfw.allow.443': '203.0.113.0/24', 'dockfw.allow.8000-8001/udp': 'any' },
    });
    const state = desiredState({ containers: [proxy], bridges: [] }, deny);
    expect(
      state.bindings.map((b) => [b.family, b.hostAddress ?? '*', b.protocol, b.portFrom, b.portTo]),
    ).toEqual([
      [4, '*', 'tcp', 443, 443],
      [4, '*', 'udp', 8000, 8001],
      [6, '*', 'tcp', 443, 443],
      [6, '*', 'udp', 8000, 8001],
    ]);
    expect(state.bindings[0]?.sources).toEqual([{ start: 0xcb007100n, end: 0xcb0071ffn }]);
    expect(state.rules).toEqual([]);
    expect(state.containers[0]?.state).toBe('enforced');
    // Unlabeled, even under policy deny: the host's own ports are not dockfw's.
    const plain = container('plain', { networkMode: 'host', networks: [{ network: 'host' }], ports: [] });
    expect(desiredState({ containers: [plain], bridges: [] }, deny).bindings).toEqual([]);
  });

  it('a host-network label naming every port is judged whole (one binding per family, not 65,535)', () => {
    const wide = container('wide', {
      networkMode: 'host',
      networks: [{ network: 'host' }],
      ports: [],
      labels: { 'dockfw.allow.1-65535': '203.0.113.0/24' },
    });
    const state = desiredState({ containers: [wide], bridges: [] }, allow);
    expect(state.bindings.map((b) => [b.family, b.protocol, b.portFrom, b.portTo])).toEqual([
      [4, 'tcp', 1, 65535],
      [6, 'tcp', 1, 65535],
    ]);
    // Planning 65,535 ports takes about 2 s: room for a loaded machine.
  }, 20_000);

  it('dockfw.allow without a port on the host network is an error that closes the named ports', () => {
    const proxy = container('proxy', {
      networkMode: 'host',
      networks: [{ network: 'host' }],
      ports: [],
      labels: { 'dockfw.allow': 'any', 'dockfw.allow.443': 'any' },
    });
    const state = desiredState({ containers: [proxy], bridges: [] }, allow);
    expect(state.errors.map(formatLabelError)).toEqual([
      'proxy: dockfw.allow: a container on the host network publishes nothing: name its ports (dockfw.allow.<port>[/<proto>])',
    ]);
    expect(state.bindings.map((b) => [b.portFrom, b.sources])).toEqual([
      [443, []],
      [443, []],
    ]);
  });
});

describe('desiredState: the paths status shows per published binding', () => {
  it('IPv4 DNAT and docker-proxy, IPv6 via docker-proxy to an IPv4-only container, direct access', () => {
    const web = container('web', {
      ports: [
        { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
        { containerPort: 80, protocol: 'tcp', hostIp: '::', hostPort: 8080 },
      ],
    });
    const [summary] = desiredState({ containers: [web], bridges: [] }, allow).containers;
    expect(summary?.paths?.map((p) => [p.to, p.via, p.judgedOn])).toEqual([
      ['0.0.0.0:8080/tcp', 'ipv4-dnat', 'binding and container address'],
      ['0.0.0.0:8080/tcp', 'docker-proxy', 'binding'],
      ['[::]:8080/tcp', 'docker-proxy', 'binding'],
      ['172.17.0.2:80/tcp', 'direct', 'container address'],
    ]);
  });

  it('are spelled on each read, not kept, and reach the /status body', () => {
    const web = container('web', {
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 }],
    });
    const [summary] = desiredState({ containers: [web], bridges: [] }, allow).containers;
    expect(summary?.paths).not.toBe(summary?.paths);
    expect(summary?.paths).toEqual(summary?.paths);
    const body = JSON.parse(JSON.stringify(summary)) as { paths?: { via: string }[] };
    expect(body.paths?.map((p) => p.via)).toEqual(['ipv4-dnat', 'docker-proxy', 'direct']);
  });

  it('IPv6 DNAT when the container has an IPv6 address; the host network for a host-network container', () => {
    const v6 = container('v6', {
      networks: [{ network: 'v6net', ipv4: '172.20.0.2', ipv6: '2001:db8:2::2' }],
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '2001:db8:1::1', hostPort: 8087 }],
    });
    const proxy = container('proxy', {
      networkMode: 'host',
      networks: [{ network: 'host' }],
      ports: [],
      labels: { 'dockfw.allow.443': 'any' },
    });
    const state = desiredState({ containers: [v6, proxy], bridges: [] }, allow);
    const paths = (name: string) =>
      state.containers.find((c) => c.name === name)?.paths?.map((p) => [p.to, p.via]);
    expect(paths('v6')).toEqual([
      ['[2001:db8:1::1]:8087/tcp', 'ipv6-dnat'],
      ['172.20.0.2:80/tcp', 'direct'],
      ['[2001:db8:2::2]:80/tcp', 'direct'],
    ]);
    expect(paths('proxy')).toEqual([
      ['0.0.0.0:443/tcp', 'host-network'],
      ['[::]:443/tcp', 'host-network'],
    ]);
  });
});

describe('desiredState: a container asking for more (port, source block) pairs than MAX_SOURCE_PAIRS', () => {
  const host = (labels: Record<string, string>) =>
    container('wide', { networkMode: 'host', networks: [{ network: 'host' }], ports: [], labels });

  it('is closed, the widest label named, on the host network', () => {
    // 65,535 ports × (63 IPv6 blocks of the range + 1 for the port) and the rest: 4.2 million.
    const state = desiredState(
      {
        containers: [
          host({
            'dockfw.allow.1-65535/tcp': '2001:db8::1-2001:db8::ffff:fffe',
            'dockfw.allow.53/udp': '203.0.113.0/24',
          }),
        ],
        bridges: [],
      },
      deny,
    );
    expect(state.containers[0]?.state).toBe('closed-invalid-label');
    expect(state.errors.map((e) => [e.container, e.label])).toEqual([['wide', 'dockfw.allow.1-65535/tcp']]);
    expect(state.errors[0]?.message).toMatch(
      /^asks for 4194243 \(port, source block\) pairs, more than 1048576:/,
    );
    // Closed: every port judged, nobody admitted.
    const tcpPorts = state.bindings
      .filter((b) => b.protocol === 'tcp')
      .reduce((sum, b) => sum + b.portTo - b.portFrom + 1, 0);
    expect(tcpPorts).toBe(2 * 65_535);
    expect(state.bindings.every((b) => b.sources !== 'any' && b.sources.length === 0)).toBe(true);
  });

  it('is not refused below the cap: the whole port space for one source block', () => {
    const state = desiredState(
      { containers: [host({ 'dockfw.allow.1-65535/tcp': '203.0.113.0/24' })], bridges: [] },
      deny,
    );
    expect(state.containers[0]?.state).toBe('enforced');
    expect(state.errors).toEqual([]);
  });
});
