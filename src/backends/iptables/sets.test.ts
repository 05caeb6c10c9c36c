import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import type { ContainerSnapshot, Protocol } from '../../docker/snapshot.js';
import { parseIPv4 } from '../../net/ip.js';
import { desiredState, type DesiredState } from '../../policy/desired.js';
import { FakeIpset } from './fake-ipset.js';
import { walkSetRules, type Packet } from './fake-lookup.js';
import { renderPreroutingPayload, renderSyncPayload } from './render.js';
import {
  diffSets,
  familySets,
  parseSetSave,
  renderSetDelta,
  renderSetDeltas,
  renderSetsFull,
  SET_ROLES,
  setName,
  sourceNets,
  type SetRole,
  type SetsDiff,
} from './sets.js';

const NO_JUMP = { parent: 'DOCKER-USER', positions: [1] };
const PRE_JUMP = { parent: 'PREROUTING', positions: [1] };

function v4(text: string): bigint {
  const value = parseIPv4(text);
  if (value === undefined) throw new Error(text);
  return value;
}

const SOURCES = ['203.0.113.10', '203.0.113.0/28', '198.51.100.0/24', '198.51.100.7', 'any', 'none'];
const ADDRESSES = ['172.17.0.2', '172.17.0.3'];

const containerArb = fc.record({
  id: fc.constantFrom('a', 'b', 'c', 'd').map((c) => c.repeat(64)),
  address: fc.constantFrom(...ADDRESSES),
  allow: fc.subarray(SOURCES, { minLength: 1, maxLength: 2 }),
  port: fc.constantFrom(80, 443),
  hostPort: fc.constantFrom(8080, 8443),
  hostIp: fc.constantFrom('', '203.0.113.1', '203.0.113.2'),
  protocol: fc.constantFrom<Protocol>('tcp', 'udp'),
});

type Spec = typeof containerArb extends fc.Arbitrary<infer T> ? T : never;

function state(specs: readonly Spec[]) {
  const containers: ContainerSnapshot[] = specs.map((s, i) => ({
    id: s.id.slice(0, 63) + String(i % 10),
    name: `c${i}`,
    running: true,
    labels: { 'dockfw.allow': s.allow.join(', ') },
    networks: [{ network: 'bridge', ipv4: s.address }],
    ports: [{ containerPort: s.port, protocol: s.protocol, hostIp: s.hostIp, hostPort: s.hostPort }],
  }));
  return desiredState({ containers, bridges: ['docker0'] }, loadConfig({}));
}

/** Packets from outside that meet both layers: to a host binding (before DNAT) and a container (after). */
const PROBE_SOURCES = ['203.0.113.10', '203.0.113.5', '198.51.100.7', '192.0.2.1'];

interface Probe {
  readonly host: Packet;
  readonly container: Packet;
}

function probes(): Probe[] {
  const out: Probe[] = [];
  for (const src of PROBE_SOURCES)
    for (const hostIp of ['203.0.113.1', '203.0.113.2'])
      for (const hostPort of [8080, 8443])
        for (const address of ADDRESSES)
          for (const port of [80, 443])
            for (const protocol of ['tcp'] as const)
              out.push({
                host: { family: 4, source: v4(src), destination: v4(hostIp), protocol, port: hostPort },
                container: { family: 4, source: v4(src), destination: v4(address), protocol, port },
              });
  return out;
}
const PROBES = probes();

type Contents = Map<string, Set<string>>;

/** Whether a packet from outside passes both layers with the sets holding `contents`. */
function passes(contents: Contents, probe: Probe, chains: { pre: string; filter: string }): boolean {
  const lookup = (name: string) => {
    const role = SET_ROLES.find((r) => setName(r, 4) === name);
    return role === undefined ? undefined : { role, elements: contents.get(name) ?? [] };
  };
  const pre = walkSetRules(chains.pre, 'DOCKFW-PUBLISHED', lookup, probe.host);
  const filter = walkSetRules(chains.filter, 'DOCKFW-IN', lookup, probe.container);
  return pre !== 'DOCKFW-DROP' && filter !== 'DOCKFW-DROP';
}

function contentsOf(ipset: FakeIpset): Contents {
  return new Map(SET_ROLES.map((r) => [setName(r, 4), new Set(ipset.elements(setName(r, 4)) ?? [])]));
}

function load(desired: DesiredState): FakeIpset {
  const ipset = new FakeIpset();
  ipset.restoreNow(renderSetsFull(4, familySets(desired, 4), new Set(), new Set()));
  return ipset;
}

describe('sourceNets', () => {
  it('spells everything as the two halves (ipset refuses /0) and ranges as CIDRs', () => {
    expect(sourceNets(4, [{ start: 0n, end: (1n << 32n) - 1n }])).toEqual(['0.0.0.0/1', '128.0.0.0/1']);
    expect(sourceNets(6, [{ start: 0n, end: (1n << 128n) - 1n }])).toEqual(['::/1', '8000::/1']);
    expect(sourceNets(4, [{ start: v4('198.51.100.10'), end: v4('198.51.100.12') }])).toEqual([
      '198.51.100.10/31',
      '198.51.100.12',
    ]);
  });
});

describe('element deltas', () => {
  const chains = (desired: DesiredState) => ({
    pre: renderPreroutingPayload(desired, 4, PRE_JUMP),
    filter: renderSyncPayload(desired, 4, NO_JUMP),
  });

  it('no prefix of the batch lets in a packet that neither the old nor the new contents let in', () => {
    fc.assert(
      fc.property(
        fc.array(containerArb, { maxLength: 4 }),
        fc.array(containerArb, { maxLength: 4 }),
        (a, b) => {
          const before = state(a);
          const after = state(b);
          // The chains are the same for both (same bridges): only the sets change.
          expect(chains(after)).toEqual(chains(before));
          const rules = chains(before);
          const ipset = load(before);
          const seen = parseSetSave(ipset.tamper(['save']), new Set(SET_ROLES.map((r) => setName(r, 4))));
          const batch = renderSetDelta(4, diffSets(4, familySets(after, 4), seen)) ?? '';
          const lines = batch.split('\n').filter((l) => l !== '');
          const start = contentsOf(ipset);
          const wantBefore = PROBES.map((p) => passes(start, p, rules));
          const wantAfter = PROBES.map((p) => passes(familyContents(after), p, rules));
          for (let i = 0; i <= lines.length; i++) {
            const prefix = contentsOf(ipset);
            const now = PROBES.map((p) => passes(prefix, p, rules));
            // Every prefix is no wider than one end as a whole: the old contents, or the new.
            const withinBefore = now.every((pass, k) => !pass || wantBefore[k]);
            const withinAfter = now.every((pass, k) => !pass || wantAfter[k]);
            expect(withinBefore || withinAfter).toBe(true);
            if (i < lines.length) ipset.restoreNow(`${lines[i]}\n`);
          }
          // And the batch ends exactly at the new contents.
          expect(contentsOf(ipset)).toEqual(familyContents(after));
        },
      ),
      { numRuns: 60 },
    );
  }, 60_000);

  it('orders admitting deletes, judging adds, admitting adds, judging deletes', () => {
    const before = state([
      {
        id: 'a'.repeat(64),
        address: '172.17.0.2',
        allow: ['203.0.113.10'],
        port: 80,
        hostPort: 8080,
        hostIp: '',
        protocol: 'tcp',
      },
    ]);
    const after = state([
      {
        id: 'b'.repeat(64),
        address: '172.17.0.3',
        allow: ['198.51.100.7'],
        port: 80,
        hostPort: 8443,
        hostIp: '',
        protocol: 'tcp',
      },
    ]);
    const seen = parseSetSave(load(before).tamper(['save']), new Set(SET_ROLES.map((r) => setName(r, 4))));
    const batch = renderSetDelta(4, diffSets(4, familySets(after, 4), seen)) ?? '';
    const kinds = batch
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const [verb, , name = ''] = l.split(' ');
        const role = SET_ROLES.find((r) => setName(r, 4) === name) as SetRole;
        return `${verb} ${['bound', 'guarded'].includes(role) ? 'judging' : 'admitting'}`;
      });
    const order = ['del admitting', 'add judging', 'add admitting', 'del judging'];
    expect([...new Set(kinds)]).toEqual(order);
    expect(kinds).toEqual([...kinds].sort((x, y) => order.indexOf(x) - order.indexOf(y)));
  });

  it('puts both families in one batch step by step: every closing line before any opening one', () => {
    const diff = (family: 4 | 6, n: number): SetsDiff => {
      const element = `${family === 4 ? `10.0.0.${n}` : `fd00::${n}`},tcp:${n}`;
      const all = new Map(SET_ROLES.map((role) => [role, [element]]));
      return { structural: [], add: all, remove: all };
    };
    const deltas = [
      { family: 4 as const, diff: diff(4, 1) },
      { family: 6 as const, diff: diff(6, 2) },
    ];
    const lines = (renderSetDeltas(deltas) ?? '').split('\n').filter((l) => l !== '');
    const step = (line: string): number => {
      const [verb, , name = ''] = line.split(' ');
      const judging = name.startsWith('dockfw-bound') && !/boundip|boundany/.test(name);
      const judges = judging || name.startsWith('dockfw-guarded');
      return verb === 'del' ? (judges ? 3 : 0) : judges ? 1 : 2;
    };
    // Steps 0 and 1 only close, 2 and 3 only open: a prefix cut anywhere keeps every closing line before it.
    const steps = lines.map(step);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    for (const k of [0, 1, 2, 3])
      expect(new Set(lines.filter((l) => step(l) === k).map((l) => l.split(' ')[2]?.slice(-1)))).toEqual(
        new Set(['4', '6']),
      );
    // Each family's own lines are its delta alone, in order.
    for (const { family, diff: d } of deltas)
      expect(
        lines
          .filter((l) => (l.split(' ')[2] ?? '').endsWith(String(family)))
          .map((l) => `${l}\n`)
          .join(''),
      ).toBe(renderSetDelta(family, d));
  });
});

function familyContents(desired: DesiredState): Contents {
  const sets = familySets(desired, 4);
  return new Map(SET_ROLES.map((r) => [setName(r, 4), new Set(sets.get(r) ?? [])]));
}
