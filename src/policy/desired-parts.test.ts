// The desired state cut per container (DesiredState.parts) must say exactly what
// the whole state says, and must not be offered when two containers claim the
// same address or host port (the whole state then settles them together).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import type { ContainerSnapshot } from '../docker/snapshot.js';
import { crowdedContainer, crowdedEngine } from '../../test/support/crowded.js';
import { familySets } from '../backends/iptables/sets.js';
import { verdictElements } from '../backends/nftables/elements.js';
import { desiredState, type DesiredState } from './desired.js';

const config = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });

describe('desired state parts', () => {
  it('say what the whole state says, whenever they are offered', () => {
    let offered = 0;
    let withheld = 0;
    fc.assert(
      fc.property(crowdedEngine, fc.constantFrom('allow', 'deny'), (engine, policy) => {
        const cfg = loadConfig({ DOCKFW_DEFAULT_POLICY: policy });
        const whole = desiredState(engine, cfg, { parts: false });
        const cut = desiredState(engine, cfg);
        expect(whole.parts).toBeUndefined();
        expect(cut.rules).toEqual(whole.rules);
        expect(cut.bindings).toEqual(whole.bindings);
        expect(cut.containers).toEqual(whole.containers);
        expect(cut.errors).toEqual(whole.errors);
        if (cut.parts === undefined) {
          withheld++;
          return;
        }
        offered++;
        const rules = [...cut.parts.values()].flatMap((p) => p.rules);
        expect(new Set(rules)).toEqual(new Set(whole.rules));
        expect(rules).toHaveLength(whole.rules.length);
        for (const [id, part] of cut.parts) {
          expect(part.containerId).toBe(id);
          for (const rule of part.rules) expect(rule.containerId).toBe(id);
          for (const binding of part.bindings) expect(binding.containerId).toBe(id);
        }
        // No two parts hold one kernel element, on either backend: the backends follow
        // the sets' sizes per part and delete a part's elements when it goes.
        const holder = new Map<string, string>();
        for (const [id, part] of cut.parts) {
          const alone = { ...part, bridges: [], externalInterfaces: [], containers: [], errors: [] };
          const elements = [
            ...[4, 6].flatMap((family) =>
              [...familySets(alone, family as 4 | 6)].flatMap(([role, set]) =>
                [...set].map((e) => `ipt ${role} ${e}`),
              ),
            ),
            ...[...verdictElements(part)].flatMap(([set, list]) => list.map((e) => `nft ${set} ${e}`)),
          ];
          for (const e of new Set(elements)) {
            expect(holder.get(e), e).toBeUndefined();
            holder.set(e, id);
          }
        }
      }),
      { numRuns: 400 },
    );
    // Both cases were really met.
    expect(offered).toBeGreaterThan(20);
    expect(withheld).toBeGreaterThan(20);
  });

  const web = (id: string, address: string, hostPort: number): ContainerSnapshot => ({
    id: id.repeat(64),
    name: `web${id}`,
    running: true,
    labels: { 'dockfw.allow': '203.0.113.10' },
    networks: [{ network: 'bridge', ipv4: address }],
    ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort }],
  });

  it('are withheld while two containers hold one address (a restart that swapped them) or one host port', () => {
    const apart = desiredState(
      { containers: [web('a', '172.17.0.2', 8080), web('b', '172.17.0.3', 8081)], bridges: [] },
      config,
    );
    expect([...(apart.parts?.keys() ?? [])]).toEqual(['a'.repeat(64), 'b'.repeat(64)]);
    const sameAddress = desiredState(
      { containers: [web('a', '172.17.0.2', 8080), web('b', '172.17.0.2', 8081)], bridges: [] },
      config,
    );
    expect(sameAddress.parts).toBeUndefined();
    const samePort = desiredState(
      { containers: [web('a', '172.17.0.2', 8080), web('b', '172.17.0.3', 8080)], bridges: [] },
      config,
    );
    expect(samePort.parts).toBeUndefined();
    // And offered again once they part.
    expect(
      desiredState(
        { containers: [web('a', '172.17.0.2', 8080), web('b', '172.17.0.3', 8081)], bridges: [] },
        config,
      ).parts,
    ).toBeDefined();
  });

  it('do not travel with a spread copy whose rules were changed', () => {
    const cut = desiredState({ containers: [web('a', '172.17.0.2', 8080)], bridges: [] }, config);
    expect(cut.parts).toBeDefined();
    const copy: DesiredState = { ...cut, rules: [] };
    expect(copy.parts).toBeUndefined();
    expect(copy.bindings).toEqual(cut.bindings);
  });

  it('keep an unchanged container’s part object from sync to sync', () => {
    const a = web('a', '172.17.0.2', 8080);
    const first = desiredState({ containers: [a, web('b', '172.17.0.3', 8081)], bridges: [] }, config);
    const second = desiredState({ containers: [a, web('b', '172.17.0.4', 8081)], bridges: [] }, config);
    expect(second.parts?.get(a.id)).toBe(first.parts?.get(a.id));
    expect(second.parts?.get('b'.repeat(64))).not.toBe(first.parts?.get('b'.repeat(64)));
  });

  /** Whether two containers claim one address or host port, each container planned alone. */
  function clash(containers: readonly ContainerSnapshot[], cfg: typeof config): boolean {
    const owners = new Map<string, string>();
    for (const c of containers) {
      if (!c.running && c.created !== true) continue;
      const alone = desiredState({ containers: [c], bridges: ['docker0'] }, cfg, { parts: false });
      const claims = new Set(alone.rules.map((r) => `a ${r.family} ${r.address}`));
      for (const b of alone.bindings)
        for (let port = b.portFrom; port <= b.portTo; port++)
          claims.add(`p ${b.family} ${b.protocol} ${port}`);
      for (const claim of claims) {
        const owner = owners.get(claim);
        if (owner !== undefined && owner !== c.id) return true;
        owners.set(claim, c.id);
      }
    }
    return false;
  }

  it('are withheld exactly while two containers clash, over a run of small changes (the kept claims follow)', () => {
    let clashes = 0;
    let apart = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(crowdedContainer, { minLength: 2, maxLength: 7, selector: (c) => c.id }),
        fc.array(fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }), { minLength: 2, maxLength: 8 }),
        (pool, steps) => {
          for (const present of steps) {
            // The same objects from step to step, as the cache hands out unchanged containers.
            const containers = pool.filter((_, i) => present[i] === true);
            const cut = desiredState({ containers, bridges: ['docker0'] }, config);
            const clashing = clash(containers, config);
            if (clashing) clashes++;
            else apart++;
            expect(cut.parts === undefined).toBe(clashing);
            if (cut.parts !== undefined) {
              const whole = desiredState({ containers, bridges: ['docker0'] }, config, { parts: false });
              const rules = [...cut.parts.values()].flatMap((p) => p.rules);
              expect(new Set(rules)).toEqual(new Set(whole.rules));
              expect(rules).toHaveLength(whole.rules.length);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(clashes).toBeGreaterThan(50);
    expect(apart).toBeGreaterThan(50);
  });
});
