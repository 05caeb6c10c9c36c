import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import type { ContainerSnapshot, EngineSnapshot, Family, Protocol } from '../../docker/snapshot.js';
import { contains } from '../../net/intervals.js';
import { formatAddress, parseAddress, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { parseContainerLabels, sourcesFor } from '../../labels/labels.js';
import { desiredState, type DesiredState } from '../../policy/desired.js';
import { walkSetRules } from './fake-lookup.js';
import { RenderError, renderSyncPayload, renderUninstallPayload } from './render.js';
import { familySets, SET_ROLES, setName, SetRenderError, type FamilySets } from './sets.js';

// The grammar of every line the renderer may emit. Addresses are checked again by
// the parser below, so a line cannot smuggle anything past the patterns.
const IFACE = '[A-Za-z0-9_.+-]{1,15}';
const V4 = '(?:[0-9]{1,3}\\.){3}[0-9]{1,3}';
const V6 = '[0-9a-f:.]{2,45}';

function grammar(family: Family): RegExp[] {
  return [
    /^\*filter$/,
    /^COMMIT$/,
    /^:DOCKFW(?:-IN|-DROP)? - \[0:0\]$/,
    new RegExp(`^-A DOCKFW -i ${IFACE} -j (?:RETURN|DOCKFW-IN)$`),
    /^-A DOCKFW -j DOCKFW-IN$/,
    /^-A DOCKFW-IN -m conntrack --ctdir REPLY -j RETURN$/,
    /^-A DOCKFW-IN -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN$/,
    new RegExp(`^-A DOCKFW-IN -m set --match-set dockfw-allowed${family} dst,dst,src -j RETURN$`),
    new RegExp(`^-A DOCKFW-IN -m set --match-set dockfw-guarded${family} dst,dst -j DOCKFW-DROP$`),
    new RegExp(
      `^-A DOCKFW-IN -o ${IFACE} -m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP$`,
    ),
    /^-D (?:DOCKER-USER|FORWARD) -j DOCKFW$/,
    /^-I (?:DOCKER-USER|FORWARD) 1 -j DOCKFW$/,
    /^-A DOCKFW-DROP -j DROP$/,
    new RegExp(`^-A DOCKFW-DROP -m set --match-set dockfw-drops${family} dst,dst,src -j DROP$`),
    new RegExp(`^-A DOCKFW-DROP -j SET --add-set dockfw-drops${family} dst,dst,src$`),
  ];
}

// Every element text a set may hold: addresses checked again below.
function elementGrammar(family: Family): RegExp {
  const addr = family === 4 ? V4 : V6;
  const service = '(?:tcp|udp|sctp):[1-9][0-9]{0,4}';
  return new RegExp(
    `^(?<a>${addr})(?:/(?<ap>[0-9]{1,3}))?,${service}(?:,(?<b>${addr})(?:/(?<bp>[0-9]{1,3}))?)?$`,
  );
}

function assertElements(sets: FamilySets, family: Family): void {
  const pattern = elementGrammar(family);
  for (const elements of sets.values()) {
    for (const element of elements) {
      const groups = pattern.exec(element)?.groups;
      if (groups === undefined) throw new Error(`element outside the grammar: ${JSON.stringify(element)}`);
      for (const key of ['a', 'b'] as const) {
        const text = groups[key];
        if (text !== undefined) expect(parseAddress(text)?.family).toBe(family);
      }
    }
  }
}

function assertGrammar(payload: string, family: Family): void {
  expect(payload.endsWith('\n')).toBe(true);
  const patterns = grammar(family);
  for (const line of payload.slice(0, -1).split('\n')) {
    const match = patterns.find((p) => p.test(line));
    if (match === undefined) throw new Error(`line outside the grammar: ${JSON.stringify(line)}`);
    const groups = match.exec(line)?.groups ?? {};
    for (const key of ['cidr', 'dst', 'from', 'to'] as const) {
      const text = groups[key];
      if (text !== undefined) expect(parseAddress(text)?.family).toBe(family);
    }
  }
}

/** A packet from outside through DOCKFW-IN's set rules, looked up in the family's sets. */
function verdict(
  payload: string,
  sets: FamilySets,
  family: Family,
  source: bigint,
  dst: string,
  protocol: Protocol,
  port: number,
) {
  const byName = (name: string) => {
    const role = SET_ROLES.find((r) => setName(r, family) === name);
    return role === undefined ? undefined : { role, elements: sets.get(role) ?? [] };
  };
  const destination = (family === 4 ? parseIPv4(dst) : parseIPv6(dst)) ?? -1n;
  return walkSetRules(payload, 'DOCKFW-IN', byName, { family, source, destination, protocol, port });
}

const NO_JUMP = { parent: 'DOCKER-USER', positions: [] };

function container(overrides: Partial<ContainerSnapshot>): ContainerSnapshot {
  return {
    id: 'ab'.repeat(32),
    name: 'web',
    running: true,
    labels: {},
    networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: 'fd00::2' }],
    ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
    ...overrides,
  };
}

function desired(containers: ContainerSnapshot[], env: Record<string, string> = {}, bridges: string[] = []) {
  return desiredState({ containers, bridges }, loadConfig(env));
}

describe('renderSyncPayload', () => {
  it('keeps families apart', () => {
    const state = desired([container({ labels: { 'dockfw.allow': '203.0.113.0/24, 2001:db8::/32' } })]);
    const v4 = renderSyncPayload(state, 4, NO_JUMP);
    const v6 = renderSyncPayload(state, 6, NO_JUMP);
    const sets4 = [...familySets(state, 4).values()].flatMap((e) => [...e]).join('\n');
    const sets6 = [...familySets(state, 6).values()].flatMap((e) => [...e]).join('\n');
    expect(sets4).toContain('172.17.0.2,tcp:80,203.0.113.0/24');
    expect(sets4).not.toContain('2001:db8');
    expect(sets4).not.toContain('fd00');
    expect(sets6).toContain('fd00::2,tcp:80,2001:db8::/32');
    expect(sets6).not.toContain('203.0.113');
    expect(v4).toContain('--match-set dockfw-allowed4 ');
    expect(v4).not.toMatch(/dockfw-[a-z]+6/);
    expect(v6).toContain('--match-set dockfw-allowed6 ');
    expect(v6).not.toMatch(/dockfw-[a-z]+4/);
    assertGrammar(v4, 4);
    assertGrammar(v6, 6);
    assertElements(familySets(state, 4), 4);
    assertElements(familySets(state, 6), 6);
  });

  it('dispatches on the external interfaces when they are configured', () => {
    const state = desired([], { DOCKFW_EXTERNAL_INTERFACES: 'eth0,ens3' });
    expect(
      renderSyncPayload(state, 4, NO_JUMP)
        .split('\n')
        .filter((l) => l.startsWith('-A DOCKFW ')),
    ).toEqual(['-A DOCKFW -i ens3 -j DOCKFW-IN', '-A DOCKFW -i eth0 -j DOCKFW-IN']);
  });

  it('skips exactly the bridges Docker reports, never a wildcard; the catch-all also covers docker0 and br-+', () => {
    const state = desired([], {}, ['br-0123456789ab', 'docker0', 'lan0', 'docker_gwbridge']);
    const payload = renderSyncPayload(state, 4, NO_JUMP);
    expect(payload.split('\n').filter((l) => l.startsWith('-A DOCKFW '))).toEqual([
      '-A DOCKFW -i lo -j RETURN',
      '-A DOCKFW -i br-0123456789ab -j RETURN',
      '-A DOCKFW -i docker0 -j RETURN',
      '-A DOCKFW -i docker_gwbridge -j RETURN',
      '-A DOCKFW -i lan0 -j RETURN',
      '-A DOCKFW -j DOCKFW-IN',
    ]);
    // An outside interface named like a bridge (a bridged uplink `br-wan`) is judged.
    expect(payload).not.toMatch(/-i br-\+|-i br-wan/);
    expect(payload.split('\n').filter((l) => l.includes('catch-all'))).toEqual([
      '-A DOCKFW-IN -o docker0 -m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP',
      '-A DOCKFW-IN -o br-+ -m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP',
      '-A DOCKFW-IN -o docker_gwbridge -m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP',
      '-A DOCKFW-IN -o lan0 -m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP',
    ]);
  });

  it.each([
    [[1], []],
    [[], ['-I DOCKER-USER 1 -j DOCKFW']],
    [[3], ['-D DOCKER-USER -j DOCKFW', '-I DOCKER-USER 1 -j DOCKFW']],
    [
      [1, 4],
      ['-D DOCKER-USER -j DOCKFW', '-D DOCKER-USER -j DOCKFW', '-I DOCKER-USER 1 -j DOCKFW'],
    ],
  ])('leaves one jump at 1 when jumps are at %j', (positions, lines) => {
    const payload = renderSyncPayload(desired([]), 4, { parent: 'DOCKER-USER', positions });
    expect(payload.split('\n').filter((l) => /^-[DI] /.test(l))).toEqual(lines);
    expect(payload.trimEnd().split('\n').at(-1)).toBe('COMMIT');
  });

  it('refuses values that did not come through the parsers', () => {
    const base = desired([container({})]);
    const rule = base.rules[0];
    if (rule === undefined) throw new Error('expected a rule');
    const tampered = (change: Partial<typeof rule>, extra: Partial<DesiredState> = {}): DesiredState => ({
      ...base,
      ...extra,
      rules: [{ ...rule, ...change }],
    });
    // Addresses, ports and protocols reach the kernel only as set elements; container ids not at all.
    expect(() => familySets(tampered({ address: '172.17.0.2 -j ACCEPT' }), 4)).toThrow(SetRenderError);
    expect(() => familySets(tampered({ address: '172.17.0.2,tcp:1' }), 4)).toThrow(SetRenderError);
    expect(() => familySets(tampered({ portFrom: 0 }), 4)).toThrow(SetRenderError);
    expect(() => familySets(tampered({ protocol: 'icmp' as 'tcp' }), 4)).toThrow(SetRenderError);
    expect(renderSyncPayload(tampered({ containerId: 'x" -j ACCEPT "' }), 4, NO_JUMP)).not.toContain('x"');
    expect(() => renderSyncPayload(tampered({}, { bridges: ['br0\n-A INPUT'] }), 4, NO_JUMP)).toThrow(
      RenderError,
    );
    expect(() => renderSyncPayload(tampered({}, { externalInterfaces: ['eth0 -j'] }), 4, NO_JUMP)).toThrow(
      RenderError,
    );
    expect(() => renderSyncPayload(base, 4, { parent: 'DOCKER-USER\n-F', positions: [] })).toThrow(
      RenderError,
    );
  });
});

describe('renderUninstallPayload', () => {
  it('deletes the jumps, flushes, then deletes the owned chains', () => {
    expect(
      renderUninstallPayload({
        parent: 'DOCKER-USER',
        jumpPositions: [1, 3],
        ownedChains: ['DOCKFW-IN', 'DOCKFW'],
      }),
    ).toBe(
      [
        '*filter',
        '-D DOCKER-USER -j DOCKFW',
        '-D DOCKER-USER -j DOCKFW',
        ':DOCKFW - [0:0]',
        ':DOCKFW-IN - [0:0]',
        '-X DOCKFW',
        '-X DOCKFW-IN',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('never deletes a chain it does not own', () => {
    expect(() =>
      renderUninstallPayload({ parent: 'FORWARD', jumpPositions: [], ownedChains: ['DOCKER'] }),
    ).toThrow(RenderError);
  });
});

// Random engines: label values drawn from valid pieces and hostile text alike.
const valuePiece = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      'any',
      '203.0.113.0/24',
      '198.51.100.7',
      '198.51.100.10-198.51.100.12',
      '2001:db8::/48',
      '2001:db8:1::5-2001:db8:1::9',
    ),
    weight: 20,
  },
  fc.constantFrom('none', '10.0.0.1/8', '::ffff:1.2.3.4', '1.2.3.4\n-j ACCEPT', '$(id)'),
  fc.string({ maxLength: 12 }),
);
const labelValue = fc.array(valuePiece, { minLength: 1, maxLength: 4 }).map((items) => items.join(', '));
const labelKey = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      'dockfw.allow',
      'dockfw.allow.80',
      'dockfw.allow.53/udp',
      'dockfw.allow.8000-8002',
    ),
    weight: 20,
  },
  fc.constantFrom('dockfw.allow.9/sctp', 'dockfw.bogus', 'other.label'),
  fc.string({ maxLength: 10 }).map((s) => `dockfw.allow.${s}`),
);
const protocol = fc.constantFrom<Protocol>('tcp', 'udp', 'sctp');
const containerArb = fc.record({
  id: fc.stringMatching(/^[0-9a-f]{64}$/),
  name: fc.stringMatching(/^[a-z][a-z0-9-]{1,8}$/),
  running: fc.boolean(),
  labels: fc.dictionary(labelKey, labelValue, { maxKeys: 4 }),
  networks: fc.array(
    fc.record({
      network: fc.constantFrom('bridge', 'front', 'back'),
      ipv4: fc.ipV4(),
      ipv6: fc.ipV6().filter((a) => parseIPv6(a) !== undefined && !a.toLowerCase().startsWith('::ffff:')),
    }),
    { maxLength: 3 },
  ),
  ports: fc.array(
    fc.record({
      containerPort: fc.oneof(
        fc.constantFrom(53, 80, 8000, 8001, 8002, 9),
        fc.integer({ min: 1, max: 65535 }),
      ),
      protocol,
      hostIp: fc.constantFrom('', '0.0.0.0', '::', '127.0.0.1'),
      hostPort: fc.integer({ min: 1, max: 65535 }),
    }),
    { maxLength: 5 },
  ),
});
const engineArb: fc.Arbitrary<EngineSnapshot> = fc.record({
  containers: fc.array(containerArb, { maxLength: 4 }),
  bridges: fc.array(fc.stringMatching(/^[a-z0-9_-]{1,15}$/), { maxLength: 3 }),
});
const envArb = fc.record({
  DOCKFW_DEFAULT_POLICY: fc.constantFrom('allow', 'deny'),
  DOCKFW_EXTERNAL_INTERFACES: fc.constantFrom('', 'eth0', 'eth0,wlan0'),
});

describe('properties of random engines', () => {
  it('every payload line is in the grammar', () => {
    fc.assert(
      fc.property(
        engineArb,
        envArb,
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 3 }),
        (engine, env, jumps) => {
          const state = desiredState(engine, loadConfig(env));
          for (const family of [4, 6] as const) {
            for (const fastPath of [false, true]) {
              assertGrammar(
                renderSyncPayload(state, family, { parent: 'DOCKER-USER', positions: jumps }, { fastPath }),
                family,
              );
            }
            assertElements(familySets(state, family), family);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('does not depend on the order Docker lists things in', () => {
    fc.assert(
      fc.property(engineArb, envArb, fc.integer(), (engine, env, seed) => {
        const shuffle = <T>(items: readonly T[]): T[] =>
          items
            .map((item, i) => ({ item, key: Math.sin(seed + i * 7919) }))
            .sort((a, b) => a.key - b.key)
            .map((x) => x.item);
        const reordered: EngineSnapshot = {
          containers: shuffle(engine.containers).map((c) => ({
            ...c,
            networks: shuffle(c.networks),
            ports: shuffle(c.ports),
          })),
          bridges: shuffle(engine.bridges),
        };
        const config = loadConfig(env);
        const a = desiredState(engine, config);
        const b = desiredState(reordered, config);
        // Names and ids may repeat in random data; compare what reaches the kernel.
        for (const family of [4, 6] as const) {
          expect(renderSyncPayload(b, family, NO_JUMP)).toBe(renderSyncPayload(a, family, NO_JUMP));
          expect(familySets(b, family)).toEqual(familySets(a, family));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a packet from outside meets exactly the verdict the labels ask for', () => {
    const checked = { allowed: 0, dropped: 0 };
    const probe = fc.record({
      container: fc.nat(),
      network: fc.nat(),
      port: fc.nat(),
      family: fc.constantFrom<Family>(4, 6),
      source: fc.oneof(
        {
          arbitrary: fc.constantFrom(
            '203.0.113.9',
            '198.51.100.7',
            '198.51.100.11',
            '2001:db8:1::7',
            '2001:db8::1',
          ),
          weight: 4,
        },
        fc.ipV4(),
        fc.ipV6(),
      ),
    });
    fc.assert(
      fc.property(engineArb, envArb, fc.array(probe, { maxLength: 20 }), (engine, env, probes) => {
        const config = loadConfig(env);
        const state = desiredState(engine, config);
        const payloads = { 4: renderSyncPayload(state, 4, NO_JUMP), 6: renderSyncPayload(state, 6, NO_JUMP) };
        const sets = { 4: familySets(state, 4), 6: familySets(state, 6) };
        const running = engine.containers.filter((c) => c.running);
        for (const p of probes) {
          const c = running[p.container % Math.max(running.length, 1)];
          const net = c?.networks[p.network % Math.max(c.networks.length, 1)];
          const binding = c?.ports[p.port % Math.max(c.ports.length, 1)];
          const source = parseAddress(p.source);
          if (!c || !net || !binding || !source || source.family !== p.family) continue;
          const dst = p.family === 4 ? net.ipv4 : net.ipv6;
          const dstValue = dst === undefined ? undefined : parseAddress(dst);
          if (dstValue === undefined) continue;
          // A running container may share an address with another one in random data; skip those.
          const sameAddress = running.filter((o) =>
            o.networks.some(
              (n) => parseAddress((p.family === 4 ? n.ipv4 : n.ipv6) ?? '')?.value === dstValue.value,
            ),
          );
          if (sameAddress.length > 1) continue;
          // The naive expectation, straight from the labels.
          const labels = parseContainerLabels(c.labels);
          const sources =
            labels.kind === 'invalid'
              ? { any: false as const, v4: [], v6: [] }
              : ((labels.kind === 'labeled'
                  ? sourcesFor(labels.policy, binding.containerPort, binding.protocol)
                  : undefined) ??
                (config.defaultPolicy === 'allow'
                  ? { any: true as const }
                  : { any: false as const, v4: [], v6: [] }));
          const allowed = sources.any || contains(p.family === 4 ? sources.v4 : sources.v6, source.value);
          const dstText = formatAddress(p.family, dstValue.value);
          expect(
            verdict(
              payloads[p.family],
              sets[p.family],
              p.family,
              source.value,
              dstText,
              binding.protocol,
              binding.containerPort,
            ),
          ).toBe(allowed ? 'RETURN' : 'DOCKFW-DROP');
          checked[allowed ? 'allowed' : 'dropped']++;
        }
      }),
      { numRuns: 300 },
    );
    // The generators must reach both outcomes often, or this test proves little.
    expect(checked.allowed).toBeGreaterThan(30);
    expect(checked.dropped).toBeGreaterThan(30);
  });
});
