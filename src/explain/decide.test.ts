import { describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../config/config.js';
import type { ContainerSnapshot, EngineSnapshot } from '../docker/snapshot.js';
import { desiredState } from '../policy/desired.js';
import { explain, type Explanation } from './decide.js';
import { formatTarget, parseQuery, parseTarget, QueryError } from './query.js';

function container(name: string, overrides: Partial<ContainerSnapshot> = {}): ContainerSnapshot {
  return {
    id: `${name.charCodeAt(0).toString(16)}${name.length.toString(16)}`.padEnd(64, '0'),
    name,
    running: true,
    labels: {},
    networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
    ports: [
      { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
      { containerPort: 80, protocol: 'tcp', hostIp: '::', hostPort: 8080 },
    ],
    ...overrides,
  };
}

const allow = loadConfig({});
const deny = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });

function ask(
  containers: ContainerSnapshot[],
  source: string,
  target: string,
  config: Config = allow,
): Explanation {
  const snapshot: EngineSnapshot = { containers, bridges: ['docker0'] };
  const query = parseQuery(source, target);
  return explain(
    snapshot,
    desiredState(snapshot, config),
    query,
    config.defaultPolicy,
    formatTarget(query.target),
  );
}

describe('explain', () => {
  const web = container('web', { labels: { 'dockfw.allow': '203.0.113.0/24' } });

  it('allows a listed source on the binding and after DNAT, naming the label', () => {
    const e = ask([web], '203.0.113.7', '203.0.113.1:8080');
    expect(e.verdict).toBe('allowed');
    expect(e.paths).toHaveLength(1);
    const [path] = e.paths;
    expect(path?.kind).toBe('dnat');
    expect(path?.description).toBe('IPv4 DNAT 0.0.0.0:8080 → 172.17.0.2:80/tcp');
    expect(path?.container.name).toBe('web');
    expect(path?.decidedBy).toMatchObject({ origin: 'label', label: 'dockfw.allow', text: 'dockfw.allow' });
    expect(path?.judgements.map((j) => [j.stage, j.verdict, j.matched])).toEqual([
      ['binding', 'allowed', '203.0.113.0/24'],
      ['container', 'allowed', '203.0.113.0/24'],
    ]);
  });

  it('denies a source the label does not list', () => {
    const e = ask([web], '198.51.100.7', '203.0.113.1:8080');
    expect(e.verdict).toBe('denied');
    expect(e.paths[0]?.judgements.map((j) => j.verdict)).toEqual(['denied', 'denied']);
    expect(e.paths[0]?.decidedBy.text).toBe('dockfw.allow');
  });

  it('judges an unlabeled container by the default policy', () => {
    const open = container('open');
    const allowed = ask([open], '198.51.100.7', '203.0.113.1:8080', allow);
    expect(allowed.verdict).toBe('allowed');
    expect(allowed.paths[0]?.decidedBy).toMatchObject({ origin: 'default', text: 'default policy (allow)' });
    expect(allowed.paths[0]?.container.state).toBe('default-allow');
    const denied = ask([open], '198.51.100.7', '203.0.113.1:8080', deny);
    expect(denied.verdict).toBe('denied');
    expect(denied.paths[0]?.decidedBy).toMatchObject({ origin: 'default', text: 'default policy (deny)' });
    expect(denied.paths[0]?.container.state).toBe('default-deny');
  });

  it('closes a container with an invalid label, whatever its other labels say', () => {
    const bad = container('bad', { labels: { 'dockfw.allow': 'any', 'dockfw.allow.80': '10.0.0.0/33' } });
    const e = ask([bad], '203.0.113.7', 'bad:80');
    expect(e.verdict).toBe('denied');
    const [path] = e.paths;
    expect(path?.decidedBy).toMatchObject({ origin: 'invalid-label', text: 'invalid label' });
    expect(path?.container.state).toBe('closed-invalid-label');
    expect(path?.problems).toEqual(['dockfw.allow.80: "10.0.0.0/33": prefix length must be 0-32']);
  });

  it('sends IPv6 to an IPv4-only container through docker-proxy, judged on the binding only', () => {
    const e = ask([web], '2001:db8:1::7', '[2001:db8:1::1]:8080');
    expect(e.paths).toHaveLength(1);
    const [path] = e.paths;
    expect(path?.kind).toBe('docker-proxy');
    expect(path?.containerAddress).toBe('172.17.0.2');
    expect(path?.judgements.map((j) => j.stage)).toEqual(['binding']);
    // An IPv4-only label lets no IPv6 client in.
    expect(e.verdict).toBe('denied');
    const open = ask(
      [container('web', { labels: { 'dockfw.allow': 'any' } })],
      '2001:db8:1::7',
      '[2001:db8:1::1]:8080',
    );
    expect(open.verdict).toBe('allowed');
  });

  it('DNATs IPv6 to a container with an IPv6 address, judged on both', () => {
    const v6 = container('v6', {
      labels: { 'dockfw.allow': '2001:db8:1::10' },
      networks: [{ network: 'v6net', ipv4: '172.18.0.2', ipv6: '2001:db8:2::2' }],
    });
    const e = ask([v6], '2001:db8:1::10', '[2001:db8:1::1]:8080');
    expect(e.verdict).toBe('allowed');
    expect(e.paths[0]?.kind).toBe('dnat');
    expect(e.paths[0]?.description).toBe('IPv6 DNAT [::]:8080 → [2001:db8:2::2]:80/tcp');
    expect(e.paths[0]?.judgements.map((j) => j.stage)).toEqual(['binding', 'container']);
  });

  it('prefers a per-port label over dockfw.allow', () => {
    const both = container('both', {
      labels: { 'dockfw.allow': '203.0.113.10', 'dockfw.allow.443': 'any' },
      ports: [
        { containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
        { containerPort: 443, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8443 },
      ],
    });
    const tls = ask([both], '198.51.100.7', '203.0.113.1:8443');
    expect(tls.verdict).toBe('allowed');
    expect(tls.paths[0]?.decidedBy).toMatchObject({ label: 'dockfw.allow.443', allow: 'any' });
    const plain = ask([both], '198.51.100.7', '203.0.113.1:8080');
    expect(plain.verdict).toBe('denied');
    expect(plain.paths[0]?.decidedBy.label).toBe('dockfw.allow');
  });

  it('says the target is unknown when nothing publishes it', () => {
    expect(ask([web], '203.0.113.7', '203.0.113.1:9999')).toMatchObject({
      verdict: 'unknown',
      reason: 'no running container publishes 203.0.113.1:9999/tcp',
    });
    expect(ask([web], '203.0.113.7', '203.0.113.1:8080/udp').verdict).toBe('unknown');
    expect(ask([web], '203.0.113.7', 'nosuch:80').reason).toMatch(/no running container is named nosuch/);
    expect(ask([web], '203.0.113.7', 'web:8080').reason).toMatch(/does not publish container port 8080\/tcp/);
    expect(ask([container('gone', { running: false })], '203.0.113.7', 'gone:80').reason).toBe(
      'container gone is not running',
    );
  });

  it('tells a binding on one host address from one on every address', () => {
    const one = container('one', {
      labels: { 'dockfw.allow': 'any' },
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '203.0.113.1', hostPort: 8084 }],
    });
    const onA = ask([one], '198.51.100.7', '203.0.113.1:8084');
    expect(onA.verdict).toBe('allowed');
    expect(onA.paths[0]?.hostAddress).toBe('203.0.113.1');
    expect(onA.paths[0]?.description).toBe('IPv4 DNAT 203.0.113.1:8084 → 172.17.0.2:80/tcp');
    expect(ask([one], '198.51.100.7', '198.51.100.1:8084').verdict).toBe('unknown');
    // Every address: any host address answers.
    const every = ask([web], '203.0.113.7', '198.51.100.1:8080');
    expect(every.paths[0]?.hostAddress).toBeUndefined();
    expect(every.notes.join()).toMatch(/taken to be an address of the Docker host/);
  });

  it('lists every path to a container port: each binding and direct routing', () => {
    const e = ask([web], '203.0.113.7', web.id.slice(0, 6) + ':80');
    expect(e.paths.map((p) => p.kind)).toEqual(['dnat', 'direct']);
    expect(e.paths[1]?.judgements.map((j) => j.where)).toEqual([
      'container address 172.17.0.2:80/tcp (routed, no DNAT)',
    ]);
    expect(e.verdict).toBe('allowed');
  });

  it('treats a container address as direct routing on the container port', () => {
    const e = ask([web], '198.51.100.7', '172.17.0.2:80');
    expect(e.paths.map((p) => p.kind)).toEqual(['direct']);
    expect(e.verdict).toBe('denied');
    expect(ask([web], '198.51.100.7', '172.17.0.2:81').verdict).toBe('unknown');
  });

  it('a host-network container: judged on the ports its labels name, nothing else', () => {
    const host = container('hostnet', { networks: [{ network: 'host' }], ports: [] });
    expect(ask([host], '203.0.113.7', 'hostnet:80').reason).toMatch(/uses the host network/);
    expect(ask([host], '203.0.113.7', '203.0.113.1:80').notes.join()).toMatch(/host network \(hostnet\)/);
    const proxy = container('proxy', {
      networkMode: 'host',
      networks: [{ network: 'host' }],
      ports: [],
      labels: { 'dockfw.allow.443': '203.0.113.0/24' },
    });
    const allowed = ask([proxy], '203.0.113.7', '203.0.113.1:443');
    expect(allowed.paths.map((p) => p.kind)).toEqual(['host-network']);
    expect(allowed.verdict).toBe('allowed');
    expect(allowed.paths[0]?.judgements.map((j) => j.stage)).toEqual(['binding']);
    expect(ask([proxy], '198.51.100.7', 'proxy:443').verdict).toBe('denied');
    expect(ask([proxy], '198.51.100.7', '203.0.113.1:444').verdict).toBe('unknown');
  });
});

describe('parseTarget', () => {
  it('reads HOST:PORT, [IPV6]:PORT and CONTAINER:PORT with an optional protocol', () => {
    expect(parseTarget('203.0.113.1:8443')).toMatchObject({ kind: 'address', port: 8443, protocol: 'tcp' });
    expect(parseTarget('[2001:DB8::1]:53/udp')).toMatchObject({
      kind: 'address',
      address: { family: 6, text: '2001:db8::1' },
      protocol: 'udp',
    });
    expect(parseTarget('web-1:443/sctp')).toMatchObject({
      kind: 'container',
      container: 'web-1',
      protocol: 'sctp',
    });
  });

  it.each([
    '203.0.113.1',
    '203.0.113.1:0',
    '203.0.113.1:65536',
    'web:80/http',
    '2001:db8::1:80',
    '[203.0.113.1]:80',
    'a b:80',
  ])('refuses %s', (text) => {
    expect(() => parseTarget(text)).toThrow(QueryError);
  });

  it('refuses a source of the other family than the target address', () => {
    expect(() => parseQuery('2001:db8::7', '203.0.113.1:80')).toThrow(/one family/);
    expect(() => parseQuery('203.0.113.0/24', '203.0.113.1:80')).toThrow(/SOURCE must be/);
  });
});
