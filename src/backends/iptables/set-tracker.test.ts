import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import type { ContainerSnapshot, Protocol } from '../../docker/snapshot.js';
import { desiredState, type DesiredState } from '../../policy/desired.js';
import { SetTracker } from './set-tracker.js';
import { familySets, SET_ROLES, type FamilySets } from './sets.js';
import { webContainer } from '../../../test/support/states.js';

const sources = fc.constantFrom(
  'any',
  'none',
  '203.0.113.0/24',
  '198.51.100.7, 198.51.100.9-198.51.100.30',
  '2001:db8::/48, 203.0.113.128/25',
  '0.0.0.0/0',
);

/** Containers that share addresses and host ports now and then: claims meet. */
const container: fc.Arbitrary<ContainerSnapshot> = fc.record({
  id: fc.stringMatching(/^[0-9a-f]{64}$/),
  name: fc.stringMatching(/^[a-z]{2,6}$/),
  running: fc.boolean(),
  labels: fc.dictionary(fc.constantFrom('dockfw.allow', 'dockfw.allow.80', 'dockfw.allow.53/udp'), sources, {
    maxKeys: 2,
  }),
  networks: fc.array(
    fc.record({
      network: fc.constantFrom('a', 'b'),
      ipv4: fc.constantFrom('172.17.0.2', '172.17.0.3', '172.18.0.9'),
      ipv6: fc.constantFrom('fd00::2', '2001:db8:50::5'),
    }),
    { minLength: 1, maxLength: 2 },
  ),
  ports: fc.array(
    fc.record({
      containerPort: fc.constantFrom(53, 80, 81, 443),
      protocol: fc.constantFrom<Protocol>('tcp', 'udp'),
      hostIp: fc.constantFrom('', '0.0.0.0', '127.0.0.1', '::'),
      hostPort: fc.constantFrom(8080, 8081, 8443, 5353),
    }),
    { maxLength: 3 },
  ),
});

const copy = (sets: FamilySets): Map<string, string[]> =>
  new Map(SET_ROLES.map((role) => [role, [...(sets.get(role) ?? [])].sort()]));

/** The update holds `want`, and adds and removes exactly what differs from `before`. */
function expectStep(
  update: ReturnType<SetTracker['update']>,
  before: Map<string, string[]>,
  want: Map<string, string[]>,
): void {
  expect(copy(update.sets())).toEqual(want);
  expect(new Map(update.sizes)).toEqual(
    new Map([...want].map(([role, elements]) => [role, elements.length])),
  );
  for (const role of SET_ROLES) {
    const had = new Set(before.get(role));
    const has = new Set(want.get(role));
    expect([...(update.add.get(role) ?? [])].sort()).toEqual([...has].filter((e) => !had.has(e)).sort());
    expect([...(update.remove.get(role) ?? [])].sort()).toEqual([...had].filter((e) => !has.has(e)).sort());
  }
}

describe('SetTracker', () => {
  const web = webContainer('203.0.113.10');

  it('holds what familySets computes after every step, and hands out exactly the elements that came and went', () => {
    fc.assert(
      fc.property(
        fc.array(container, { minLength: 1, maxLength: 8 }),
        // Each step: which containers of the pool run now (the same objects from step to step).
        fc.array(fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom<4 | 6>(4, 6),
        fc.constantFrom('allow', 'deny'),
        (pool, steps, family, policy) => {
          const config = loadConfig({ DOCKFW_DEFAULT_POLICY: policy });
          const tracker = new SetTracker(family);
          let before = new Map<string, string[]>(SET_ROLES.map((role) => [role, []]));
          for (const step of steps) {
            const containers = pool.filter((_, i) => step[i] === true);
            const desired = desiredState({ containers, bridges: ['docker0'] }, config);
            const update = tracker.update(desired);
            const want = copy(familySets(desired, family));
            expectStep(update, before, want);
            before = want;
          }
        },
      ),
      { numRuns: 300, seed: 14 },
    );
  });

  it('follows containers that change between syncs (same id, new address or labels), in parts or whole', () => {
    let inParts = 0;
    fc.assert(
      fc.property(
        // Each slot: one container id, two versions of it.
        fc.array(fc.tuple(container, container), { minLength: 1, maxLength: 6 }),
        // Each step: per slot, absent or one of the versions.
        fc.array(fc.array(fc.constantFrom(0, 1, 2), { minLength: 6, maxLength: 6 }), {
          minLength: 2,
          maxLength: 6,
        }),
        fc.constantFrom<4 | 6>(4, 6),
        (slots, steps, family) => {
          const config = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });
          const pool = slots.map(([a, b]) => [a, { ...b, id: a.id }] as const);
          const tracker = new SetTracker(family);
          let before = new Map<string, string[]>(SET_ROLES.map((role) => [role, []]));
          for (const step of steps) {
            const containers = pool.flatMap((versions, i) => {
              const pick = step[i] ?? 0;
              return pick === 0 ? [] : [versions[pick - 1] as ContainerSnapshot];
            });
            const desired = desiredState({ containers, bridges: ['docker0'] }, config);
            if (desired.parts !== undefined) inParts++;
            const update = tracker.update(desired);
            const want = copy(
              familySets(desiredState({ containers, bridges: [] }, config, { parts: false }), family),
            );
            expectStep(update, before, want);
            before = want;
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(inParts).toBeGreaterThan(100);
  });

  it('compares whole when the sizes it follows would go below zero (two parts holding one element), and takes them from a whole spell', () => {
    const config = loadConfig({});
    const alone = desiredState({ containers: [web], bridges: [] }, config);
    const part = alone.parts?.get(web.id);
    if (part === undefined) throw new Error('no part');
    // Not what desiredState offers (its claims forbid it): one part's elements under two ids.
    const withParts = (parts: Map<string, typeof part>): DesiredState =>
      Object.defineProperty<DesiredState>({ ...alone }, 'parts', { value: parts, enumerable: false });
    const tracker = new SetTracker(4);
    const first = tracker.update(
      withParts(
        new Map([
          ['one', part],
          ['two', { ...part, containerId: 'two' }],
        ]),
      ),
    );
    const held = copy(first.sets());
    expect(held.get('allowed')).toEqual(['172.17.0.2,tcp:80,203.0.113.10']);
    const gone = tracker.update(withParts(new Map()));
    // Each element removed once, not once per part that held it; nothing left.
    for (const role of SET_ROLES) expect([...(gone.remove.get(role) ?? [])].sort()).toEqual(held.get(role));
    expect([...gone.sizes.values()].every((n) => n === 0)).toBe(true);
    expect([...tracker.sizes().values()].every((n) => n === 0)).toBe(true);
    // Both parts again: the sizes followed count the element twice, until a whole spell
    // (what a read-back compare writes to the kernel) resets them.
    const both = tracker.update(
      withParts(
        new Map([
          ['one', part],
          ['two', { ...part, containerId: 'two' }],
        ]),
      ),
    );
    expect(both.sizes.get('allowed')).toBe(2);
    expect(copy(both.sets()).get('allowed')).toEqual(['172.17.0.2,tcp:80,203.0.113.10']);
    expect(tracker.sizes().get('allowed')).toBe(1);
  });

  it('spells only the units whose sources changed', () => {
    const config = loadConfig({});
    const other: ContainerSnapshot = {
      ...web,
      id: 'b'.repeat(64),
      name: 'other',
      networks: [{ network: 'bridge', ipv4: '172.17.0.3' }],
      ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8081 }],
    };
    const tracker = new SetTracker(4);
    tracker.update(desiredState({ containers: [web], bridges: [] }, config));
    const next = tracker.update(desiredState({ containers: [web, other], bridges: [] }, config));
    expect(next.add.get('allowed')).toEqual(['172.17.0.3,tcp:80,203.0.113.10']);
    expect(next.add.get('guarded')).toEqual(['172.17.0.3,tcp:80']);
    expect(next.add.get('boundany')).toEqual(['203.0.113.10,tcp:8081']);
    expect([...next.remove.values()].flat()).toEqual([]);
  });
});
