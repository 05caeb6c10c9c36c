// Injection attempts against both backends' payloads, kept as regression tests
// (test/fixtures/injection-corpus.json). Every hostile string goes in where
// Docker or the admin could put it: label keys and values, container names,
// bridge names, DOCKFW_EXTERNAL_INTERFACES, and straight into the renderers.
import { describe, expect, it } from 'vitest';
import { RenderError } from '../../src/backends/iptables/render.js';
import { NftRenderError, tableSpec } from '../../src/backends/nftables/elements.js';
import { renderTablePayload } from '../../src/backends/nftables/render.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import type { ContainerSnapshot, EngineSnapshot } from '../../src/docker/snapshot.js';
import { parseContainerLabels } from '../../src/labels/labels.js';
import { desiredState, type DesiredState } from '../../src/policy/desired.js';
import corpus from '../fixtures/injection-corpus.json' with { type: 'json' };
import { assertNoWiderThanLabels, checkPayloads } from './fuzz-properties.js';
import { iptablesAllows, iptablesFamilyPayload, nftAllows } from './payload-grammar.js';
import { SetRenderError } from '../../src/backends/iptables/sets.js';

const ALLOW = loadConfig({});
const DENY = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });

function container(overrides: Partial<ContainerSnapshot> = {}): ContainerSnapshot {
  return {
    id: 'ab'.repeat(32),
    name: 'web',
    running: true,
    labels: {},
    networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: 'fd00::2' }],
    ports: [
      { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 },
      { containerPort: 53, protocol: 'udp', hostIp: '', hostPort: 8053 },
    ],
    ...overrides,
  };
}

function payloads(snapshot: EngineSnapshot, config = ALLOW): string[] {
  const desired = desiredState(snapshot, config);
  return [
    iptablesFamilyPayload(desired, 4, [2]),
    iptablesFamilyPayload(desired, 6, [2]),
    renderTablePayload(tableSpec(desired)),
  ];
}

/** Words no payload line ever needs; their presence would mean text was copied in. */
const FORBIDDEN = [/ACCEPT/, /flush/, /include/, /[;$`'\\\r\0]/, /evil/, /passwd/, /-F /, /\u2028|\u0085/];

/** nft's fixed chain headers have the only `;` (and `accept`) a payload may hold. */
const CHAIN_HEADERS = [
  '\t\ttype filter hook forward priority -10; policy accept;\n',
  '\t\ttype filter hook prerouting priority -150; policy accept;\n',
];

function assertClean(texts: readonly string[]): void {
  for (const text of texts) {
    const body = CHAIN_HEADERS.reduce((t, header) => t.replace(header, ''), text);
    for (const word of FORBIDDEN) expect(body).not.toMatch(word);
  }
}

describe('injection corpus: labels', () => {
  it.each(corpus.labels.map((c) => [JSON.stringify(c.key), JSON.stringify(c.value), c] as const))(
    '%s = %s',
    (_k, _v, { key, value }) => {
      const snapshot = { containers: [container({ labels: { [key]: value } })], bridges: ['docker0'] };
      const parsed = parseContainerLabels({ [key]: value });
      for (const config of [ALLOW, DENY]) {
        checkPayloads(snapshot, config, [1, 3]);
        assertClean(payloads(snapshot, config));
      }
      if (parsed.kind === 'invalid') {
        // Closed: no allow at all for this container, whatever the default policy.
        const [v4, v6, nft] = payloads(snapshot);
        expect(iptablesAllows(v4 ?? '', 4)).toEqual([]);
        expect(iptablesAllows(v6 ?? '', 6)).toEqual([]);
        expect(nftAllows(nft ?? '')).toEqual([]);
      }
    },
  );

  it('only plain addresses, blocks, ranges, any and none are accepted', () => {
    const accepted = corpus.labels
      .filter(({ key, value }) => parseContainerLabels({ [key]: value }).kind === 'labeled')
      .map(({ value }) => value);
    // The IPv4-compatible ::a.b.c.d is a real IPv6 address (and rendered as one).
    expect(accepted.sort()).toEqual(['2001:DB8::/32', '::/0', '::203.0.113.7']);
  });
});

describe('injection corpus: names Docker or the admin choose', () => {
  it.each(corpus.containerNames)('container name %j never reaches a payload', (name) => {
    const snapshot = {
      containers: [container({ name, labels: { 'dockfw.allow': '203.0.113.7' } })],
      bridges: [],
    };
    checkPayloads(snapshot, ALLOW);
    for (const text of payloads(snapshot)) expect(text).not.toContain(name);
  });

  it.each(corpus.bridges)('bridge name %j is left out, not rendered', (bridge) => {
    const snapshot = { containers: [container()], bridges: ['docker0', bridge] };
    checkPayloads(snapshot, ALLOW);
    assertClean(payloads(snapshot));
    expect(desiredState(snapshot, ALLOW).bridges).toEqual(['docker0']);
  });

  it.each(corpus.externalInterfaces)('DOCKFW_EXTERNAL_INTERFACES=%j is a configuration error', (value) => {
    expect(() => loadConfig({ DOCKFW_EXTERNAL_INTERFACES: value })).toThrow(ConfigError);
  });
});

describe('injection corpus: straight into the renderers (the last line of defence)', () => {
  const base = desiredState(
    { containers: [container({ labels: { 'dockfw.allow': '203.0.113.7' } })], bridges: [] },
    ALLOW,
  );
  const rule = base.rules[0];
  if (rule === undefined) throw new Error('fixture has no rule');
  const mutants: [string, DesiredState][] = corpus.fragments.flatMap((fragment): [string, DesiredState][] => [
    [`address ${JSON.stringify(fragment)}`, { ...base, rules: [{ ...rule, address: fragment }] }],
    [`container id ${JSON.stringify(fragment)}`, { ...base, rules: [{ ...rule, containerId: fragment }] }],
    [`bridge ${JSON.stringify(fragment)}`, { ...base, bridges: [fragment] }],
    [`interface ${JSON.stringify(fragment)}`, { ...base, externalInterfaces: [fragment] }],
    [`protocol ${JSON.stringify(fragment)}`, { ...base, rules: [{ ...rule, protocol: fragment as 'tcp' }] }],
  ]);

  it.each(mutants)('%s: refused, or rendered inside the grammar', (_what, state) => {
    // A few fragments are harmless where they land (e.g. "-" as a bridge name is
    // not an address); those must still render inside the grammar and allow nothing new.
    const snapshot = { containers: [container({ labels: { 'dockfw.allow': '203.0.113.7' } })], bridges: [] };
    for (const family of [4, 6] as const) {
      let payload: string | undefined;
      try {
        payload = iptablesFamilyPayload(state, family);
      } catch (error) {
        expect(error instanceof RenderError || error instanceof SetRenderError).toBe(true);
      }
      if (payload !== undefined) {
        assertClean([payload]);
        assertNoWiderThanLabels(snapshot, ALLOW, iptablesAllows(payload, family));
      }
    }
    let nft: string | undefined;
    try {
      nft = renderTablePayload(tableSpec(state));
    } catch (error) {
      expect(error).toBeInstanceOf(NftRenderError);
    }
    if (nft !== undefined) {
      assertClean([nft]);
      assertNoWiderThanLabels(snapshot, ALLOW, nftAllows(nft));
    }
  });
});

describe('the checks themselves', () => {
  const snapshot = { containers: [container({ labels: { 'dockfw.allow': '203.0.113.0/24' } })], bridges: [] };
  const [v4 = '', , nft = ''] = payloads(snapshot);

  it('see a widened source (iptables and nft)', () => {
    expect(() => assertNoWiderThanLabels(snapshot, ALLOW, iptablesAllows(v4, 4))).not.toThrow();
    const wider = v4.replace('tcp:80,203.0.113.0/24', 'tcp:80,203.0.112.0/23');
    expect(() => assertNoWiderThanLabels(snapshot, ALLOW, iptablesAllows(wider, 4))).toThrow(
      /more than the labels/,
    );
    const unrestricted = v4.replace('tcp:80,203.0.113.0/24', 'tcp:80,0.0.0.0/1');
    expect(() => assertNoWiderThanLabels(snapshot, ALLOW, iptablesAllows(unrestricted, 4))).toThrow(
      /more than the labels/,
    );
    const nftWider = nft.replace('. 203.0.113.0/24', '. 0.0.0.0/0');
    expect(nftWider).not.toBe(nft);
    expect(() => assertNoWiderThanLabels(snapshot, ALLOW, nftAllows(nftWider))).toThrow(
      /more than the labels/,
    );
  });

  it('see an injected line (iptables and nft)', () => {
    expect(() => iptablesAllows(v4.replace('COMMIT', '-A DOCKFW-IN -j ACCEPT\nCOMMIT'), 4)).toThrow(
      /outside the grammar/,
    );
    expect(() => nftAllows(nft.replace('\tchain forward {', '\tchain forward {\n\t\taccept'))).toThrow(
      /outside the grammar/,
    );
    expect(() => nftAllows(`${nft}flush ruleset\n`)).toThrow(/outside the grammar/);
  });
});
