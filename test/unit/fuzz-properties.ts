/**
 * Hostile input for the pure core, as fast-check properties: label keys and
 * values, `docker inspect` shapes, network lists and configuration values.
 * Each property runs the whole pipeline a sync runs (parseInspect →
 * desiredState → both renderers) and checks:
 *   - nothing throws but the documented errors (ZodError/Error from
 *     parseInspect, InspectError from parseInspectArray, ConfigError from
 *     loadConfig; desiredState and the renderers never throw on parsed input);
 *   - every payload line is in the renderer's grammar (iptables-restore, nft);
 *   - no payload allows a source the labels (or the default policy) do not.
 * No vitest here: test/unit/fuzz.test.ts runs these briefly, scripts/fuzz-long.ts
 * runs them 100,000 times each.
 */
import fc from 'fast-check';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { tableSpec } from '../../src/backends/nftables/elements.js';
import { renderElementPayload, renderTablePayload } from '../../src/backends/nftables/render.js';
import { ConfigError, loadConfig, SETTINGS, type Config, type ConfigFlags } from '../../src/config/config.js';
import { bridgeNames, type NetworkSummary } from '../../src/docker/docker-client.js';
import { InspectError, parseInspect, parseInspectArray } from '../../src/docker/inspect.js';
import type { ContainerSnapshot, EngineSnapshot, Family } from '../../src/docker/snapshot.js';
import { mergeIntervals, type Interval } from '../../src/net/intervals.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../../src/net/ip.js';
import { parseContainerLabels, sourcesFor } from '../../src/labels/labels.js';
import { parseSources } from '../../src/labels/sources.js';
import { desiredState, onHostNetwork } from '../../src/policy/desired.js';
import { iptablesAllows, iptablesFamilyPayload, nftAllows, type PayloadAllow } from './payload-grammar.js';
import corpus from '../fixtures/injection-corpus.json' with { type: 'json' };

// ---------------------------------------------------------------- arbitraries

const hostile = fc.constantFrom(...corpus.fragments);
/** 64 hex digits (fc.stringMatching is slow for this). */
const hexId = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((bytes) => Buffer.from(bytes).toString('hex'));
const v4 = fc.oneof(fc.ipV4(), fc.constantFrom('203.0.113.7', '0.0.0.0', '255.255.255.255', '010.1.1.1'));
const v6 = fc.oneof(
  fc.ipV6(),
  fc.constantFrom('::ffff:203.0.113.7', '::ffff:0:0/96', 'fe80::1%eth0', '::', '::1', '2001:db8::1%1'),
);
const prefix = fc.oneof(fc.integer({ min: 0, max: 130 }).map(String), fc.constantFrom('', '08', '-1', '32 '));

/** One item of a label value: mostly address-like, sometimes garbage. */
const sourceItem: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(v4, v6) },
  { weight: 3, arbitrary: fc.tuple(fc.oneof(v4, v6), prefix).map(([a, p]) => `${a}/${p}`) },
  { weight: 2, arbitrary: fc.tuple(fc.oneof(v4, v6), fc.oneof(v4, v6)).map(([a, b]) => `${a}-${b}`) },
  { weight: 2, arbitrary: fc.constantFrom('any', 'none', ' any ', 'ANY', '', ' ') },
  { weight: 2, arbitrary: hostile },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);
const separator = fc.constantFrom(',', ', ', ' ,\t', '\n', ';', ' ');
export const labelValue: fc.Arbitrary<string> = fc
  .tuple(fc.array(sourceItem, { minLength: 1, maxLength: 5 }), separator)
  .map(([items, sep]) => items.join(sep))
  .chain((v) => fc.oneof({ weight: 9, arbitrary: fc.constant(v) }, fc.constant(`${v}${'x'.repeat(70_000)}`)));

const portText = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map(String),
  // Ranges reversed, past 65535, or up to 300 ports wide. A range as wide as the port
  // space on a host-network container spells up to a million ipset elements (every
  // port times every source block; past MAX_SOURCE_PAIRS dockfw closes it), and
  // checking one such case took 79 s, past this test's budget.
  fc
    .tuple(fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: -50, max: 300 }))
    .map(([a, width]) => `${a}-${a + width}`),
  fc.constantFrom('080', '80 ', '1e3', '0x50', '-80', '80-', ''),
);
const protoText = fc.constantFrom('', '/tcp', '/udp', '/sctp', '/icmp', '/TCP', '/');
export const labelKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.constant('dockfw.allow') },
  { weight: 6, arbitrary: fc.tuple(portText, protoText).map(([p, proto]) => `dockfw.allow.${p}${proto}`) },
  { weight: 1, arbitrary: hostile.map((h) => `dockfw.allow.${h}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map((s) => `dockfw.${s}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);
const hostileLabels = fc.dictionary(labelKey, labelValue, { maxKeys: 5 });

/** A block's first address, so the item is valid CIDR text. */
function network(family: Family, address: bigint, prefix: number): string {
  const hostBits = BigInt((family === 4 ? 32 : 128) - prefix);
  return `${formatAddress(family, (address >> hostBits) << hostBits)}/${prefix}`;
}
// Half of the addresses near each other (203.0.113.0/24, 2001:db8::/120), so
// items overlap, touch or leave small gaps: where merging could go wrong.
const v4Value = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 32n) - 1n }),
  fc.bigInt({ min: 0xcb007100n, max: 0xcb0071ffn }),
);
const v6Value = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).filter((v) => v >> 32n !== 0xffffn),
  fc.bigInt({ min: 0n, max: 255n }).map((v) => (0x20010db8n << 96n) + v),
);
/** Items the grammar accepts: addresses, blocks, ranges of either family, rarely any/none. */
const validItem: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: v4Value.map((v) => formatAddress(4, v)) },
  {
    weight: 3,
    arbitrary: fc.tuple(v4Value, fc.integer({ min: 0, max: 32 })).map(([v, p]) => network(4, v, p)),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(v4Value, v4Value)
      .map(([a, b]) => `${formatAddress(4, a < b ? a : b)}-${formatAddress(4, a < b ? b : a)}`),
  },
  { weight: 2, arbitrary: v6Value.map((v) => formatAddress(6, v)) },
  {
    weight: 2,
    arbitrary: fc.tuple(v6Value, fc.integer({ min: 0, max: 128 })).map(([v, p]) => network(6, v, p)),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(v6Value, v6Value)
      .map(([a, b]) => `${formatAddress(6, a < b ? a : b)}-${formatAddress(6, a < b ? b : a)}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('any', 'none', '0.0.0.0/0', '::/0') },
);
export const validValue = fc
  .array(validItem, { minLength: 1, maxLength: 4 })
  .map((items) => items.join(', '));
const validKey = fc.constantFrom(
  'dockfw.allow',
  'dockfw.allow.80',
  'dockfw.allow.53/udp',
  'dockfw.allow.443/tcp',
  'dockfw.allow.81-90',
  'dockfw.allow.65000-65535/sctp',
);
const wellFormedLabels = fc.dictionary(validKey, validValue, { maxKeys: 3 });
export const labels = fc.oneof(
  { weight: 3, arbitrary: wellFormedLabels },
  { weight: 2, arbitrary: hostileLabels },
);

/** A value that is usually what Docker sends, sometimes anything at all. */
function mostly<T>(usual: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 8, arbitrary: usual },
    { weight: 1, arbitrary: fc.constantFrom(null, undefined, '', 0, [], {}) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
}

const inspectAddress = (family: Family) =>
  mostly(fc.oneof(family === 4 ? v4 : v6, fc.constantFrom('', '::ffff:172.17.0.2', 'fe80::2%eth0'), hostile));
const portKey = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 70_000 }), fc.constantFrom('tcp', 'udp', 'sctp', 'icmp', 'TCP'))
    .map(([p, proto]) => `${p}/${proto}`),
  fc.constantFrom('80', '80/tcp/x', '/tcp', '080/tcp', '65535/udp', '65536/tcp', '1-5/tcp'),
);
const binding = mostly(
  fc.record(
    {
      HostIp: mostly(fc.constantFrom('', '0.0.0.0', '::', '127.0.0.1', '::ffff:1.2.3.4', 'fe80::1%lo')),
      HostPort: mostly(fc.constantFrom('8080', '', '0', '65535', '99999', 'abc', '80:81')),
    },
    { requiredKeys: [] },
  ),
);
const id = fc.oneof(
  { weight: 8, arbitrary: hexId },
  { weight: 1, arbitrary: fc.constantFrom('ab'.repeat(32).toUpperCase(), `${'a'.repeat(63)}"`, '') },
);

/** One element of `docker inspect`: Docker's shape, with fields missing, null or wrong. */
export const inspectElement: fc.Arbitrary<unknown> = mostly(
  fc.record(
    {
      Id: mostly(id),
      Name: mostly(fc.oneof(fc.stringMatching(/^\/[a-z0-9_.-]{1,20}$/), hostile)),
      State: mostly(fc.record({ Running: mostly(fc.boolean()) }, { requiredKeys: [] })),
      Config: mostly(fc.record({ Labels: mostly(labels) }, { requiredKeys: [] })),
      NetworkSettings: mostly(
        fc.record(
          {
            Networks: mostly(
              fc.dictionary(
                fc.oneof(fc.constantFrom('bridge', 'second', 'host'), hostile),
                mostly(
                  fc.record(
                    { IPAddress: inspectAddress(4), GlobalIPv6Address: inspectAddress(6) },
                    { requiredKeys: [] },
                  ),
                ),
                { maxKeys: 3 },
              ),
            ),
            Ports: mostly(
              fc.dictionary(portKey, mostly(fc.array(binding, { maxLength: 3 })), { maxKeys: 4 }),
            ),
          },
          { requiredKeys: [] },
        ),
      ),
    },
    { requiredKeys: ['Id', 'State', 'Config', 'NetworkSettings'] },
  ),
);

const networkSummary: fc.Arbitrary<NetworkSummary> = fc.record({
  Id: fc.oneof(hexId, hostile),
  Name: fc.oneof(fc.constantFrom('bridge', 'second'), hostile),
  Driver: fc.constantFrom('bridge', 'overlay', 'host', 'null'),
  Options: fc.oneof(
    fc.constant(null),
    fc.record({
      'com.docker.network.bridge.name': fc.oneof(hostile, fc.stringMatching(/^[a-z0-9_.+-]{1,16}$/)),
    }),
  ),
});

const settingValue = fc.oneof(
  hostile,
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom(
    'allow',
    'deny',
    'iptables',
    'nftables',
    'auto',
    'eth0',
    'eth+',
    '+',
    'eth0,,lo',
    '* * * * *',
  ),
  fc.constantFrom('127.0.0.1:9811', '[::1]:9811', ':0', 'unix:///run/x.sock', 'tcp://h:1', ''),
);
export const configInput: fc.Arbitrary<{
  env: Partial<Record<string, string>>;
  flags: ConfigFlags;
}> = fc.record({
  env: fc.record(
    Object.fromEntries(Object.values(SETTINGS).map((s) => [s.env, settingValue])) as Record<
      string,
      fc.Arbitrary<string>
    >,
    { requiredKeys: [] },
  ),
  flags: fc.record(
    Object.fromEntries(Object.keys(SETTINGS).map((name) => [name, settingValue])) as Record<
      keyof ConfigFlags,
      fc.Arbitrary<string>
    >,
    { requiredKeys: [] },
  ),
});

/** Well-formed containers (distinct addresses) carrying hostile labels. */
export const labelledEngine: fc.Arbitrary<EngineSnapshot> = fc.record({
  containers: fc
    .uniqueArray(fc.integer({ min: 2, max: 250 }), { minLength: 1, maxLength: 4 })
    .chain((hosts) =>
      fc.tuple(
        ...hosts.map((n) =>
          fc.record({
            id: hexId,
            name: fc.constantFrom('web', 'db', 'admin', 'a', 'zz'),
            running: fc.boolean(),
            labels,
            networks: fc.constant([
              { network: 'bridge', ipv4: `172.17.0.${n}`, ipv6: `fd00::${n.toString(16)}` },
            ]),
            ports: fc.array(
              fc.record({
                containerPort: fc.oneof(
                  fc.integer({ min: 1, max: 65535 }),
                  fc.constantFrom(53, 80, 81, 85, 443, 2000),
                ),
                protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const),
                hostIp: fc.constant(''),
                hostPort: fc.integer({ min: 1, max: 65535 }),
              }),
              { maxLength: 4 },
            ),
          }),
        ),
      ),
    ),
  bridges: fc.array(fc.oneof(fc.constantFrom('docker0', 'br-0123456789ab'), hostile), { maxLength: 3 }),
});

export const policyConfig: fc.Arbitrary<Config> = fc
  .record({
    DOCKFW_DEFAULT_POLICY: fc.constantFrom('allow', 'deny'),
    DOCKFW_EXTERNAL_INTERFACES: fc.constantFrom('', 'eth0', 'eth0,ens3', 'eth+'),
  })
  .map((env) => loadConfig(env));

// ------------------------------------------------------------------- checks

/** What the labels (or the default policy) let reach one published port, per family. */
function permitted(
  container: ContainerSnapshot,
  config: Config,
  family: Family,
  port: number,
  protocol: string,
): 'any' | Interval[] {
  const result = parseContainerLabels(container.labels);
  if (result.kind === 'invalid') return [];
  const sources = result.kind === 'labeled' ? sourcesFor(result.policy, port, protocol as 'tcp') : undefined;
  if (sources === undefined) return config.defaultPolicy === 'allow' ? 'any' : [];
  if (sources.any) return 'any';
  return [...(family === 4 ? sources.v4 : sources.v6)];
}

function addressesOf(container: ContainerSnapshot, family: Family): bigint[] {
  return container.networks
    .map((n) => (family === 4 ? parseIPv4(n.ipv4 ?? '') : parseIPv6(n.ipv6 ?? '')))
    .filter((v): v is bigint => v !== undefined);
}

const WHOLE: Readonly<Record<Family, Interval>> = {
  4: { start: 0n, end: (1n << 32n) - 1n },
  6: { start: 0n, end: (1n << 128n) - 1n },
};

function within(inner: Interval, outer: readonly Interval[]): boolean {
  return mergeIntervals(outer).some((o) => o.start <= inner.start && inner.end <= o.end);
}

/** The family and address (undefined: every local one) a binding's host IP names, like the core reads it. */
function hostTargets(hostIp: string): { family: Family; address: bigint | undefined }[] {
  if (hostIp === '')
    return [
      { family: 4, address: undefined },
      { family: 6, address: undefined },
    ];
  const v4 = parseIPv4(hostIp);
  if (v4 !== undefined) return [{ family: 4, address: v4 === 0n ? undefined : v4 }];
  const v6 = parseIPv6(hostIp.replace(/^\[|\]$/g, ''));
  if (v6 !== undefined) return [{ family: 6, address: v6 === 0n ? undefined : v6 }];
  return [];
}

/** What the labels let reach one allow's target: by container address, or by published binding. */
function bounds(
  snapshot: EngineSnapshot,
  config: Config,
  allow: PayloadAllow,
  port: number,
): ('any' | Interval[])[] {
  const running = snapshot.containers.filter((c) => c.running);
  if (allow.on === 'container') {
    return running
      .filter(
        (c) =>
          allow.dst !== undefined &&
          addressesOf(c, allow.family).includes(allow.dst) &&
          // A host-network container publishes nothing: its labels name its ports (a hostile
          // engine may give it an address, which its labels then judge too).
          (onHostNetwork(c) ||
            c.ports.some((p) => p.containerPort === port && p.protocol === allow.protocol)),
      )
      .map((c) => permitted(c, config, allow.family, port, allow.protocol));
  }
  // A host-network container's dockfw.allow.<port> labels are bindings on every local address.
  const hostNetwork = running
    .filter((c) => onHostNetwork(c))
    .map((c) => permitted(c, config, allow.family, port, allow.protocol));
  return [
    ...hostNetwork,
    ...running.flatMap((c) =>
      c.ports
        .filter(
          (b) =>
            b.hostPort === port &&
            b.protocol === allow.protocol &&
            hostTargets(b.hostIp).some(
              (t) => t.family === allow.family && (t.address === undefined || t.address === allow.dst),
            ),
        )
        .map((b) => permitted(c, config, allow.family, b.containerPort, b.protocol)),
    ),
  ];
}

/**
 * Every allow in the payload is covered by what some running container at that
 * address, publishing that port (or holding that published binding), permits.
 * (Several containers may claim one address in a hostile engine; their union
 * is the bound.)
 */
export function assertNoWiderThanLabels(
  snapshot: EngineSnapshot,
  config: Config,
  allows: readonly PayloadAllow[],
): void {
  for (const allow of allows) {
    for (let port = allow.from; port <= allow.to; port++) {
      const found = bounds(snapshot, config, allow, port);
      const source = allow.source === 'any' ? WHOLE[allow.family] : allow.source;
      const union = found.includes('any') ? [WHOLE[allow.family]] : (found.flat() as Interval[]);
      if (!within(source, union)) {
        const where = allow.dst === undefined ? 'every address' : formatAddress(allow.family, allow.dst);
        const shown = `${allow.on} ${where} ${allow.protocol}/${port}`;
        throw new Error(
          `payload allows more than the labels at ${shown}: ${JSON.stringify(allow, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`,
        );
      }
    }
  }
}

/** Both backends' payloads for one desired state: grammar, and no allow wider than the labels. */
export function checkPayloads(snapshot: EngineSnapshot, config: Config, jumps: readonly number[] = []): void {
  const desired = desiredState(snapshot, config);
  for (const family of [4, 6] as const) {
    const payload = iptablesFamilyPayload(desired, family, jumps, family === 4 ? 'DOCKER-USER' : 'FORWARD');
    assertNoWiderThanLabels(snapshot, config, iptablesAllows(payload, family));
  }
  const spec = tableSpec(desired);
  assertNoWiderThanLabels(snapshot, config, nftAllows(renderTablePayload(spec)));
  // The element-only payload (a sync where just elements change) from an empty table.
  const changes = [...spec.sets].map(([set, elements]) => ({ set, add: elements, delete: elements }));
  assertNoWiderThanLabels(snapshot, config, nftAllows(renderElementPayload(changes)));
}

function isDocumentedInspectError(error: unknown): boolean {
  return (
    error instanceof z.ZodError || (error instanceof Error && error.message.startsWith('unexpected port key'))
  );
}

// --------------------------------------------------------------- properties

/** Hostile inspect elements: parse or a documented error; what parses syncs cleanly. */
export const inspectProperty = () =>
  fc.property(
    fc.array(inspectElement, { maxLength: 4 }),
    fc.array(networkSummary, { maxLength: 3 }),
    policyConfig,
    (elements, networks, config) => {
      const containers: ContainerSnapshot[] = [];
      for (const element of elements) {
        try {
          containers.push(parseInspect(element));
        } catch (error) {
          if (!isDocumentedInspectError(error)) throw error;
        }
      }
      try {
        parseInspectArray(elements);
      } catch (error) {
        if (!(error instanceof InspectError)) throw error;
      }
      checkPayloads({ containers, bridges: bridgeNames(networks) }, config);
    },
  );

/** Hostile labels on well-formed containers: grammar and no allow wider than the labels. */
export const labelsProperty = () =>
  fc.property(
    labelledEngine,
    policyConfig,
    fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 3 }),
    (snapshot, config, jumps) => checkPayloads(snapshot, config, jumps),
  );

/** A label value's sources never cover an address its items do not (node:net as the oracle). */
export const sourcesProperty = () =>
  fc.property(fc.oneof(validValue, labelValue), fc.oneof(v4, v6), (value, probe) => {
    const parsed = parseSources(value);
    if (!parsed.ok || parsed.value.any) return;
    const oracle = new BlockList();
    for (const item of value.split(',').map((i) => i.trim())) {
      const [base = '', len] = item.split('/');
      const dash = item.indexOf('-');
      if (len !== undefined && isIP(base) !== 0)
        oracle.addSubnet(base, Number(len), isIP(base) === 4 ? 'ipv4' : 'ipv6');
      else if (
        dash > 0 &&
        isIP(item.slice(0, dash)) !== 0 &&
        isIP(item.slice(0, dash)) === isIP(item.slice(dash + 1))
      )
        oracle.addRange(
          item.slice(0, dash),
          item.slice(dash + 1),
          isIP(item.slice(0, dash)) === 4 ? 'ipv4' : 'ipv6',
        );
      else if (isIP(item) !== 0) oracle.addAddress(item, isIP(item) === 4 ? 'ipv4' : 'ipv6');
    }
    const family = isIP(probe);
    if (family === 0) return;
    const value4or6 = family === 4 ? parseIPv4(probe) : parseIPv6(probe);
    if (value4or6 === undefined) return;
    const intervals = family === 4 ? parsed.value.v4 : parsed.value.v6;
    // Probe the label's own interval edges too: that is where a widening would show.
    const edges = intervals.flatMap((i) => [i.start, i.end, i.start - 1n, i.end + 1n]);
    for (const point of [value4or6, ...edges]) {
      if (point < 0n || point > WHOLE[family as Family].end) continue;
      const text = formatAddress(family as Family, point);
      const inLabel = intervals.some((i) => i.start <= point && point <= i.end);
      if (inLabel && !oracle.check(text, family === 4 ? 'ipv4' : 'ipv6'))
        throw new Error(`${JSON.stringify(value)} allows ${text}, which none of its items names`);
    }
  });

/** Hostile configuration: a Config or a ConfigError; a Config always renders cleanly. */
export const configProperty = () =>
  fc.property(configInput, (input) => {
    let config: Config;
    try {
      config = loadConfig(input.env, input.flags);
    } catch (error) {
      if (error instanceof ConfigError) return;
      throw error;
    }
    const container: ContainerSnapshot = {
      id: 'ab'.repeat(32),
      name: 'web',
      running: true,
      labels: { 'dockfw.allow': '203.0.113.0/24' },
      networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: 'fd00::2' }],
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
    };
    checkPayloads({ containers: [container], bridges: ['docker0'] }, config);
  });

/** How many cases, and the seed to replay a failure with. */
export interface RunParameters {
  readonly numRuns: number;
  readonly seed?: number;
}

/** Each property as a function that runs it (fc.assert) and throws on a counterexample. */
export const PROPERTIES: Readonly<Record<string, (parameters: RunParameters) => void>> = {
  inspect: (parameters) => fc.assert(inspectProperty(), parameters),
  labels: (parameters) => fc.assert(labelsProperty(), parameters),
  sources: (parameters) => fc.assert(sourcesProperty(), parameters),
  config: (parameters) => fc.assert(configProperty(), parameters),
};
