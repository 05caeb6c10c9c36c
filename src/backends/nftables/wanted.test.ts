// The table wanted, cut per container, must be the table spec of the whole
// state, and the changes between two of them must turn one into the other.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { desiredState } from '../../policy/desired.js';
import { crowdedContainer } from '../../../test/support/crowded.js';
import { tableSpec } from './elements.js';
import { changesBetween, Wanted } from './wanted.js';

const config = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });
const specOf = (desired: Parameters<typeof tableSpec>[0]) => tableSpec(desired);

/** Two engines sharing some container objects (unchanged ones), as two syncs see them. */
const twoSyncs = fc.uniqueArray(crowdedContainer, { maxLength: 6, selector: (c) => c.id }).chain((pool) =>
  fc
    .tuple(fc.subarray(pool), fc.subarray(pool), fc.array(crowdedContainer, { maxLength: 2 }))
    .map(([before, after, fresh]) => {
      // A fresh container may be a new version of one that ran before (same id).
      const renewed = fresh.map((c, i) => (i < before.length ? { ...c, id: before[i]?.id ?? c.id } : c));
      const ids = new Set(renewed.map((c) => c.id));
      return [before, after.filter((c) => !ids.has(c.id)), renewed] as const;
    }),
);

describe('nftables: the table wanted, per container', () => {
  it('puts together the spec of the whole state, and its changes lead from one sync to the next', () => {
    let perPart = 0;
    fc.assert(
      fc.property(twoSyncs, ([before, after, added]) => {
        const a = desiredState({ containers: before, bridges: ['docker0'] }, config);
        const b = desiredState({ containers: [...after, ...added], bridges: ['docker0'] }, config);
        const wantA = Wanted.of(a, specOf);
        const wantB = Wanted.of(b, specOf);
        expect(wantA.spec()).toEqual(
          tableSpec(desiredState({ containers: before, bridges: ['docker0'] }, config, { parts: false })),
        );
        expect(wantB.spec()).toEqual(tableSpec(b));
        // Let go after a sync, the whole spec is put together again from the parts.
        const whole = wantA.spec();
        wantA.release();
        expect(wantA.spec() === whole).toBe(a.parts === undefined);
        expect(wantA.spec()).toEqual(whole);
        if (a.parts !== undefined && b.parts !== undefined) perPart++;
        const changes = changesBetween(wantA, wantB);
        for (const [name, have] of wantA.spec().sets) {
          const change = changes.find((c) => c.set === name);
          const held = new Set(have);
          for (const e of change?.delete ?? []) {
            expect(held.has(e)).toBe(true);
            held.delete(e);
          }
          for (const e of change?.add ?? []) {
            expect(held.has(e)).toBe(false);
            held.add(e);
          }
          expect([...held].sort()).toEqual(wantB.spec().sets.get(name));
        }
      }),
      { numRuns: 300 },
    );
    expect(perPart).toBeGreaterThan(30);
  });
});
