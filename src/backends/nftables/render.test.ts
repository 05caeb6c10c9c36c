import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig } from '../../config/config.js';
import { parseInspectArray } from '../../docker/inspect.js';
import type { ContainerSnapshot, EngineSnapshot, Family, Protocol } from '../../docker/snapshot.js';
import { contains } from '../../net/intervals.js';
import { parseAddress, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { parseContainerLabels, sourcesFor } from '../../labels/labels.js';
import { desiredState, type DesiredRule, type DesiredState } from '../../policy/desired.js';
import { NftRenderError, tableSpec, type TableSpec } from './elements.js';
import type { SetName } from './names.js';
import {
  chainRules,
  publishedRules,
  recordRules,
  renderElementPayload,
  renderTablePayload,
  renderUninstallPayload,
} from './render.js';

function fixture(name: string, env: Record<string, string>, bridges: string[]): DesiredState {
  const path = new URL(`../../../test/fixtures/${name}`, import.meta.url);
  const json: unknown = JSON.parse(readFileSync(path, 'utf8'));
  return desiredState({ containers: parseInspectArray(json), bridges }, loadConfig(env));
}

const WEB: ContainerSnapshot = {
  id: 'a'.repeat(64),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '203.0.113.10, 198.51.100.0/24, 203.0.113.20-203.0.113.22' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
  ports: [
    { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 },
    { containerPort: 81, protocol: 'tcp', hostIp: '', hostPort: 8081 },
  ],
};

function desired(containers: ContainerSnapshot[], env: Record<string, string> = {}): DesiredState {
  return desiredState({ containers, bridges: ['docker0', 'br-0123456789ab', 'lan0'] }, loadConfig(env));
}

describe('nftables payload', () => {
  it.each([
    [
      'example-inspect.json',
      {},
      ['docker0', 'br-6a1f0e2d3c4b', 'br-7b2e1f3d4c5a'],
      'nftables.example.allow.golden',
    ],
    [
      'multi-network.json',
      { DOCKFW_DEFAULT_POLICY: 'deny', DOCKFW_EXTERNAL_INTERFACES: 'eth0,eth1' },
      ['docker0', 'br-0c1d2e3f4a5b', 'lan0'],
      'nftables.multi-network.deny-external.golden',
    ],
  ])('renders %s with %j like the reviewed golden file', async (name, env, bridges, golden) => {
    await expect(renderTablePayload(tableSpec(fixture(name, env, bridges)))).toMatchFileSnapshot(
      `../../../test/fixtures/${golden}`,
    );
  });

  it('puts sources, ports and addresses into set elements, one element per source interval', () => {
    const spec = tableSpec(desired([WEB]));
    expect(spec.sets.get('allowed4')).toEqual([
      '172.17.0.2 . tcp . 80-81 . 198.51.100.0/24',
      '172.17.0.2 . tcp . 80-81 . 203.0.113.10',
      '172.17.0.2 . tcp . 80-81 . 203.0.113.20-203.0.113.22',
    ]);
    expect(spec.sets.get('guarded4')).toEqual(['172.17.0.2 . tcp . 80-81']);
    // The label names only IPv4 sources: the IPv6 address is closed.
    expect(spec.sets.get('allowed6')).toEqual([]);
    expect(spec.sets.get('guarded6')).toEqual(['2001:db8:ffff::2 . tcp . 80-81']);
    // Only the bridges Docker reports are exempt; the catch-all also covers Docker's default names.
    expect(spec.sets.get('bridges')).toEqual(['"br-0123456789ab"', '"docker0"', '"lan0"']);
    expect(spec.sets.get('dnatbridges')).toEqual(['"br-*"', '"docker0"', '"lan0"']);
    expect(spec.sets.has('outside')).toBe(false);
  });

  it('allows `any` without a guard, and closes invalid labels and unlabeled ports under deny', () => {
    const open = { ...WEB, id: 'b'.repeat(64), name: 'open', labels: { 'dockfw.allow': 'any' } };
    const bad = { ...WEB, id: 'c'.repeat(64), name: 'bad', labels: { 'dockfw.allow': '10.0.0.0/33' } };
    const bare = { ...WEB, id: 'd'.repeat(64), name: 'bare', labels: {} };
    const withAddress = (c: ContainerSnapshot, n: number): ContainerSnapshot => ({
      ...c,
      networks: [{ network: 'bridge', ipv4: `172.17.0.${n}` }],
    });
    const spec = tableSpec(
      desired([withAddress(open, 3), withAddress(bad, 4), withAddress(bare, 5)], {
        DOCKFW_DEFAULT_POLICY: 'deny',
      }),
    );
    expect(spec.sets.get('allowed4')).toEqual(['172.17.0.3 . tcp . 80-81 . 0.0.0.0/0']);
    expect(spec.sets.get('guarded4')).toEqual(['172.17.0.4 . tcp . 80-81', '172.17.0.5 . tcp . 80-81']);
  });

  it('keeps the first verdict when two containers claim one address, so no elements overlap', () => {
    const first = { ...WEB, name: 'aaa', labels: { 'dockfw.allow': '203.0.113.10' } };
    const second = { ...WEB, id: 'e'.repeat(64), name: 'bbb', labels: { 'dockfw.allow': '203.0.113.0/24' } };
    const spec = tableSpec(desired([second, first]));
    expect(spec.sets.get('allowed4')).toEqual(['172.17.0.2 . tcp . 80-81 . 203.0.113.10']);
  });

  it('uses configured outside interfaces instead of "everything but lo and bridges"; `+` becomes `*`', () => {
    const spec = tableSpec(desired([WEB], { DOCKFW_EXTERNAL_INTERFACES: 'eth+,eth0,wan0' }));
    expect(spec.sets.get('outside')).toEqual(['"eth*"', '"wan0"']);
    expect(chainRules(spec).map((r) => r.role)).toEqual([
      'not-outside',
      'replies',
      'allowed4',
      'allowed6',
      'guarded4',
      'guarded6',
      'catch-all',
    ]);
  });

  it('has the same rules for 10 and for 1,000 containers (only set elements grow)', () => {
    const many = (count: number): ContainerSnapshot[] =>
      Array.from({ length: count }, (_, i) => ({
        ...WEB,
        id: i.toString(16).padStart(64, '0'),
        name: `c${i}`,
        networks: [{ network: 'bridge', ipv4: `172.17.${Math.floor(i / 250)}.${(i % 250) + 2}` }],
      }));
    const chainOf = (payload: string) => payload.split('chain forward {')[1];
    const ten = renderTablePayload(tableSpec(desired(many(10))));
    const thousand = renderTablePayload(tableSpec(desired(many(1000))));
    expect(chainOf(thousand)).toEqual(chainOf(ten));
    expect(tableSpec(desired(many(1000))).sets.get('allowed4')).toHaveLength(3000);
  });

  it('writes only changed elements, deletes first, in one payload', () => {
    expect(
      renderElementPayload([
        {
          set: 'allowed4',
          add: ['172.17.0.3 . tcp . 80 . 203.0.113.10'],
          delete: ['172.17.0.2 . tcp . 80 . 203.0.113.10'],
        },
        { set: 'guarded4', add: ['172.17.0.3 . tcp . 80'], delete: [] },
      ]),
    ).toBe(
      [
        'delete element inet dockfw allowed4 { 172.17.0.2 . tcp . 80 . 203.0.113.10 }',
        'add element inet dockfw allowed4 { 172.17.0.3 . tcp . 80 . 203.0.113.10 }',
        'add element inet dockfw guarded4 { 172.17.0.3 . tcp . 80 }',
        '',
      ].join('\n'),
    );
    expect(renderElementPayload([])).toBe('');
    expect(renderUninstallPayload()).toBe('add table inet dockfw\ndelete table inet dockfw\n');
  });

  it('refuses anything the core should never hand over', () => {
    const rule: DesiredRule = {
      containerId: 'a'.repeat(64),
      containerName: 'web',
      family: 4,
      address: '172.17.0.2',
      protocol: 'tcp',
      portFrom: 80,
      portTo: 80,
      sources: 'any',
    };
    const state = (patch: Partial<DesiredRule>, more: Partial<DesiredState> = {}): DesiredState => ({
      ...desired([]),
      rules: [{ ...rule, ...patch }],
      ...more,
    });
    expect(() => tableSpec(state({ address: '172.17.0.2 } ; flush ruleset' }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({ address: '::1' }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({ family: 6, address: '172.17.0.2' }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({ protocol: 'icmp' as Protocol }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({ portFrom: 0 }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({ portTo: 70000 }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({ sources: [{ start: 5n, end: 1n << 40n }] }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({}, { bridges: ['br0"; flush ruleset; "'] }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({}, { externalInterfaces: ['eth0 }'] }))).toThrow(NftRenderError);
    expect(() => tableSpec(state({}))).not.toThrow();
  });
});

// Every line the table payload may contain. Element fields are checked again by
// the address parser below, so nothing can hide inside a pattern.
const V4 = '(?:[0-9]{1,3}\\.){3}[0-9]{1,3}';
const V6 = '[0-9a-f:.]{2,39}';
const PORTS = '[1-9][0-9]{0,4}(?:-[1-9][0-9]{0,4})?';
const RULE_TEXTS = new Set(
  [false, true]
    .flatMap((outsideConfigured) =>
      [0, 1].flatMap((records) => [
        ...chainRules({ outsideConfigured, records }),
        ...publishedRules({ outsideConfigured, records }),
      ]),
    )
    .concat(recordRules(4), recordRules(6))
    .map((r) => `\t\t${r.text} comment "dockfw ${r.role}"`),
);
const LINE_PATTERNS: RegExp[] = [
  /^add table inet dockfw$/,
  /^delete table inet dockfw$/,
  /^table inet dockfw \{$/,
  /^\tset (?:bridges|dnatbridges|outside|bound4|boundallowed4|bound6|boundallowed6|allowed4|guarded4|allowed6|guarded6) \{$/,
  /^\t\ttype (?:ifname|ipv4_addr \. inet_proto \. inet_service(?: \. ipv4_addr)?|ipv6_addr \. inet_proto \. inet_service(?: \. ipv6_addr)?)$/,
  /^\t\ttype inet_service \. inet_proto \. (?:ipv4_addr(?: \. ipv4_addr)?|ipv6_addr(?: \. ipv6_addr)?)$/,
  /^\t\tflags interval$/,
  /^\t\telements = \{$/,
  /^\t\t\t"[A-Za-z0-9_.-]{1,15}\*?",?$/,
  new RegExp(
    `^\\t\\t\\t(?<a>${V4})(?:/0)? \\. (?:tcp|udp|sctp) \\. ${PORTS}(?: \\. (?<s>${V4})(?:/[0-9]{1,2}|-(?<e>${V4}))?)?,?$`,
  ),
  new RegExp(
    `^\\t\\t\\t(?<a>${V6})(?:/0)? \\. (?:tcp|udp|sctp) \\. ${PORTS}(?: \\. (?<s>${V6})(?:/[0-9]{1,3}|-(?<e>${V6}))?)?,?$`,
  ),
  // Published bindings: host port first.
  new RegExp(
    `^\\t\\t\\t${PORTS} \\. (?:tcp|udp|sctp) \\. (?<a>${V4})(?:/0)?(?: \\. (?<s>${V4})(?:/[0-9]{1,2}|-(?<e>${V4}))?)?,?$`,
  ),
  new RegExp(
    `^\\t\\t\\t${PORTS} \\. (?:tcp|udp|sctp) \\. (?<a>${V6})(?:/0)?(?: \\. (?<s>${V6})(?:/[0-9]{1,3}|-(?<e>${V6}))?)?,?$`,
  ),
  /^\t\t\}$/,
  /^\t\}$/,
  /^\tchain forward \{$/,
  /^\t\ttype filter hook forward priority -10; policy accept;$/,
  /^\tset drops[46] \{$/,
  /^\t\tsize [1-9][0-9]{0,6}$/,
  /^\t\tflags dynamic,timeout$/,
  /^\t\ttimeout 3600s$/,
  /^\t\tcounter$/,
  /^\tchain drop[46] \{$/,
  /^\tchain published \{$/,
  /^\t\ttype filter hook prerouting priority -150; policy accept;$/,
  /^\}$/,
];

function assertGrammar(payload: string): void {
  expect(payload.endsWith('\n')).toBe(true);
  for (const line of payload.slice(0, -1).split('\n')) {
    if (RULE_TEXTS.has(line)) continue;
    const match = LINE_PATTERNS.map((p) => p.exec(line)).find((m) => m !== null);
    if (!match) throw new Error(`line outside the grammar: ${JSON.stringify(line)}`);
    for (const text of [match.groups?.a, match.groups?.s, match.groups?.e]) {
      if (text !== undefined) expect(parseAddress(text)).toBeDefined();
    }
  }
}

/** Evaluates the table's sets for one packet from outside, as the kernel's rules would. */
function verdict(
  spec: TableSpec,
  family: Family,
  dst: string,
  protocol: Protocol,
  port: number,
  source: bigint,
): 'pass' | 'drop' {
  const parse = (text: string): bigint => (family === 4 ? parseIPv4(text) : parseIPv6(text)) ?? -1n;
  const fieldMatches = (field: string, value: bigint): boolean => {
    const [base = '', len] = field.split('/');
    if (len !== undefined) {
      const size = 1n << BigInt((family === 4 ? 32 : 128) - Number(len));
      return value >= parse(base) && value < parse(base) + size;
    }
    const dash = field.indexOf('-', 1);
    if (dash > 0 && !/^[0-9]+-[0-9]+$/.test(field)) {
      return value >= parse(field.slice(0, dash)) && value <= parse(field.slice(dash + 1));
    }
    return value === parse(field);
  };
  const portMatches = (field: string): boolean => {
    const [from = '', to = from] = field.split('-');
    return port >= Number(from) && port <= Number(to);
  };
  const hit = (set: string, withSource: boolean): boolean =>
    (spec.sets.get((family === 4 ? `${set}4` : `${set}6`) as SetName) ?? []).some((element) => {
      const [a = '', p = '', ports = '', s = ''] = element.split(' . ');
      return (
        fieldMatches(a, parse(dst)) &&
        p === protocol &&
        portMatches(ports) &&
        (!withSource || fieldMatches(s, source))
      );
    });
  if (hit('allowed', true)) return 'pass';
  return hit('guarded', false) ? 'drop' : 'pass';
}

describe('nftables payload, properties', () => {
  const sources = fc.constantFrom(
    'any',
    'none',
    '203.0.113.0/24',
    '198.51.100.7, 198.51.100.9-198.51.100.30',
    '2001:db8::/48, 203.0.113.128/25',
    '2001:db8:1::5-2001:db8:1::9',
    '0.0.0.0/0',
  );
  const engine: fc.Arbitrary<EngineSnapshot> = fc.record({
    containers: fc.uniqueArray(
      fc.record({
        id: fc.stringMatching(/^[0-9a-f]{64}$/),
        name: fc.stringMatching(/^[a-z]{2,8}$/),
        running: fc.constant(true),
        labels: fc.dictionary(
          fc.constantFrom('dockfw.allow', 'dockfw.allow.80', 'dockfw.allow.53/udp', 'dockfw.allow.81'),
          sources,
          { maxKeys: 3 },
        ),
        networks: fc
          .tuple(fc.integer({ min: 2, max: 40 }), fc.boolean())
          .map(([n, v6]) => [
            v6
              ? { network: 'bridge', ipv4: `172.17.0.${n}`, ipv6: `2001:db8:ffff::${n.toString(16)}` }
              : { network: 'bridge', ipv4: `172.17.0.${n}` },
          ]),
        ports: fc.uniqueArray(
          fc.record({
            containerPort: fc.constantFrom(53, 80, 81, 82, 443),
            protocol: fc.constantFrom<Protocol>('tcp', 'udp'),
            hostIp: fc.constant(''),
            hostPort: fc.integer({ min: 1024, max: 65535 }),
          }),
          { maxLength: 4, selector: (p) => `${p.containerPort}/${p.protocol}` },
        ),
      }),
      { maxLength: 6, selector: (c) => c.id },
    ),
    bridges: fc.constant(['docker0']),
  });

  it('every payload line is in the grammar', () => {
    fc.assert(
      fc.property(engine, fc.boolean(), (snapshot, deny) => {
        const config = deny ? loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' }) : defaultConfig();
        assertGrammar(renderTablePayload(tableSpec(desiredState(snapshot, config))));
      }),
    );
  });

  it('a packet passes exactly when the label (or the policy) allows its source, first container winning', () => {
    const probes = ['203.0.113.5', '203.0.113.200', '198.51.100.8', '198.51.100.20', '192.0.2.1'];
    fc.assert(
      fc.property(engine, (snapshot) => {
        const state = desiredState(snapshot, defaultConfig());
        const spec = tableSpec(state);
        const claimed = new Set<string>();
        for (const container of [...snapshot.containers].sort((a, b) =>
          a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : 1,
        )) {
          const address = container.networks[0]?.ipv4 ?? '';
          const labels = parseContainerLabels(container.labels);
          for (const port of container.ports) {
            const key = `${address}/${port.protocol}/${port.containerPort}`;
            if (claimed.has(key)) continue;
            claimed.add(key);
            const allowed =
              labels.kind === 'invalid'
                ? undefined
                : labels.kind === 'labeled'
                  ? (sourcesFor(labels.policy, port.containerPort, port.protocol) ?? 'any')
                  : 'any';
            for (const probe of probes) {
              const value = parseIPv4(probe) ?? 0n;
              const expected =
                allowed === undefined
                  ? 'drop'
                  : allowed === 'any' || allowed.any || contains(allowed.v4, value)
                    ? 'pass'
                    : 'drop';
              expect(verdict(spec, 4, address, port.protocol, port.containerPort, value)).toBe(expected);
            }
          }
        }
      }),
    );
  });
});

describe('the fast path (only where revoked connections are cut)', () => {
  const spec = (fastPath: boolean): TableSpec => ({ ...tableSpec(desired([WEB])), fastPath });

  it('adds nothing when off: every packet judged, replies let by as before', () => {
    const roles = chainRules(spec(false)).map((r) => r.role);
    expect(roles).not.toContain('established');
    expect(roles).toContain('replies');
    expect(renderTablePayload(spec(false))).toBe(renderTablePayload(tableSpec(desired([WEB]))));
  });

  it('lets established packets of the original direction skip the lookups, first in both chains', () => {
    const payload = renderTablePayload(spec(true));
    const established = 'ct state established ct direction original fib saddr . iif oif exists return';
    expect(payload).toContain(`${established} comment "dockfw pre-established"`);
    expect(payload).toContain(`${established} comment "dockfw established"`);
    expect(chainRules(spec(true))[0]?.role).toBe('established');
    // Never `related` (an expectation admits a new connection's first packet).
    expect(payload).not.toMatch(/related/);
  });

  it('judges replies to a guarded target: a connection picked up from the server side after a cut', () => {
    const texts = chainRules(spec(true)).map((r) => r.text);
    expect(texts).toContain('ct direction reply ip daddr . meta l4proto . th dport != @guarded4 return');
    expect(texts).toContain('ct direction reply ip6 daddr . meta l4proto . th dport != @guarded6 return');
    expect(texts).not.toContain('ct direction reply return');
    expect(renderTablePayload(spec(true))).toContain(
      'ct direction reply th dport . meta l4proto . ip daddr != @bound4 return comment "dockfw pre-replies4"',
    );
  });
});
