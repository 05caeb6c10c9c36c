// desiredState remembers each container's part by its snapshot object (the
// container cache hands out the same object while a container is unchanged):
// the result must be exactly what planning every container afresh gives.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ContainerSnapshot, EngineSnapshot } from '../../src/docker/snapshot.js';
import { desiredState } from '../../src/policy/desired.js';
import { labelledEngine, policyConfig } from './fuzz-properties.js';

/** Created, host-network and restarting (planned ports only) containers too. */
const variant = fc.constantFrom('as-is', 'created', 'host', 'planned-only');

function vary(container: ContainerSnapshot, how: string): ContainerSnapshot {
  if (how === 'created')
    return { ...container, running: false, created: true, plannedPorts: container.ports, ports: [] };
  // Its labels name its ports one by one: narrow ranges (1-65535 would plan 65,535 ports).
  if (how === 'host')
    return {
      ...container,
      networkMode: 'host',
      labels: { 'dockfw.allow.80-81': '203.0.113.10', 'dockfw.allow.53/udp': 'any' },
    };
  if (how === 'planned-only') return { ...container, plannedPorts: container.ports, ports: [] };
  return container;
}

const engine: fc.Arbitrary<EngineSnapshot> = labelledEngine.chain((snapshot) =>
  fc
    .array(variant, { minLength: snapshot.containers.length, maxLength: snapshot.containers.length })
    .map((ways) => ({ ...snapshot, containers: snapshot.containers.map((c, i) => vary(c, ways[i] ?? '')) })),
);

const fresh = (snapshot: EngineSnapshot): EngineSnapshot => structuredClone(snapshot);

describe('desiredState remembered per container', () => {
  it('gives what planning afresh gives, for the same objects, a mix of old and new, and another config', () => {
    fc.assert(
      fc.property(engine, engine, policyConfig, policyConfig, (a, b, config, other) => {
        const once = desiredState(a, config);
        expect(desiredState(a, config)).toEqual(once);
        expect(once).toEqual(desiredState(fresh(a), config));
        // Some containers kept (remembered), some new, in another order.
        const mixed = { containers: [...b.containers, ...a.containers.slice(1)], bridges: b.bridges };
        expect(desiredState(mixed, config)).toEqual(desiredState(fresh(mixed), config));
        // The same objects under another config are planned for that config.
        expect(desiredState(a, other)).toEqual(desiredState(fresh(a), other));
      }),
      { numRuns: 200 },
    );
  });
});
