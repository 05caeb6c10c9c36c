import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crowdedContainer } from '../../test/support/crowded.js';
import { loadConfig } from '../config/config.js';
import type { ContainerSnapshot } from '../docker/snapshot.js';
import { parseIPv4, parseIPv6 } from '../net/ip.js';
import { desiredState, type DesiredState } from './desired.js';
import { hostView, judgeFlow, narrowed, type Flow, type HostInterface } from './judge-flow.js';
import { webContainer } from '../../test/support/states.js';

const WEB = webContainer('203.0.113.11, 2001:db8:1::11');
const OPEN: ContainerSnapshot = {
  ...WEB,
  id: 'b'.repeat(64),
  name: 'open',
  labels: {},
  networks: [{ network: 'bridge', ipv4: '172.17.0.3' }],
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8081 }],
};
const INTERFACES: HostInterface[] = [
  { name: 'lo', family: 4, address: '127.0.0.1', prefix: 8 },
  { name: 'eth0', family: 4, address: '203.0.113.1', prefix: 24 },
  { name: 'eth0', family: 6, address: '2001:db8:1::1', prefix: 64 },
  { name: 'docker0', family: 4, address: '172.17.0.1', prefix: 16 },
];

function state(containers: ContainerSnapshot[], env: Record<string, string> = {}): DesiredState {
  return desiredState({ containers, bridges: ['docker0'] }, loadConfig(env));
}

const v4 = (text: string): bigint => parseIPv4(text) ?? -1n;
const v6 = (text: string): bigint => parseIPv6(text) ?? -1n;

/** A DNAT'd IPv4 flow from `source` to host port 8080 → 172.17.0.2:80 (or the given target). */
function dnat(source: string, hostPort = 8080, to = '172.17.0.2', port = 80): Flow {
  return {
    family: 4,
    protocol: 'tcp',
    source: v4(source),
    sourcePort: 40000,
    destination: v4('203.0.113.1'),
    destinationPort: hostPort,
    replySource: v4(to),
    replySourcePort: port,
  };
}

/** An IPv6 flow to docker-proxy on the host: no DNAT, delivered locally. */
function proxied(source: string, port = 8080): Flow {
  const host = v6('2001:db8:1::1');
  return {
    family: 6,
    protocol: 'tcp',
    source: v6(source),
    sourcePort: 40000,
    destination: host,
    destinationPort: port,
    replySource: host,
    replySourcePort: port,
  };
}

describe('judging a tracked connection', () => {
  const desired = state([WEB, OPEN]);
  const host = hostView(INTERFACES, desired);

  it('refuses a DNAT flow from a source the labels do not list, on its binding', () => {
    expect(judgeFlow(desired, host, dnat('203.0.113.10'))).toEqual({
      containerId: WEB.id,
      containerName: 'web',
      target: 'binding 0.0.0.0:8080/tcp',
    });
    expect(judgeFlow(desired, host, dnat('203.0.113.11'))).toBeUndefined();
  });

  it('refuses on the container address when only that judges (routed straight to it)', () => {
    const routed = { ...dnat('203.0.113.10'), destination: v4('172.17.0.2'), destinationPort: 80 };
    expect(judgeFlow(desired, host, routed)?.target).toBe('container 172.17.0.2:80/tcp');
  });

  it('judges a docker-proxy flow on its binding by the original destination', () => {
    expect(judgeFlow(desired, host, proxied('2001:db8:1::10'))?.target).toBe('binding [::]:8080/tcp');
    expect(judgeFlow(desired, host, proxied('2001:db8:1::11'))).toBeUndefined();
  });

  it('admits what is open to everyone, and leaves unjudged ports alone', () => {
    expect(judgeFlow(desired, host, dnat('203.0.113.10', 8081, '172.17.0.3'))).toBeUndefined();
    expect(judgeFlow(desired, host, proxied('2001:db8:1::10', 22))).toBeUndefined();
  });

  it('never judges connections of the host itself, of containers, or from interfaces dockfw lets by', () => {
    expect(judgeFlow(desired, host, dnat('172.17.0.3'))).toBeUndefined();
    expect(judgeFlow(desired, host, dnat('127.0.0.1'))).toBeUndefined();
    expect(judgeFlow(desired, host, dnat('203.0.113.1'))).toBeUndefined();
    // With outside interfaces configured, a LAN interface is not judged.
    const lan = state([WEB], { DOCKFW_EXTERNAL_INTERFACES: 'eth0' });
    const withLan = hostView(
      [...INTERFACES, { name: 'lan0', family: 4, address: '10.9.0.1', prefix: 24 }],
      lan,
    );
    expect(judgeFlow(lan, withLan, dnat('10.9.0.7'))).toBeUndefined();
    expect(judgeFlow(lan, withLan, dnat('203.0.113.10'))).toBeDefined();
  });

  it('refuses a DNAT flow to a bridge address no container judges any more (the catch-all)', () => {
    const gone = state([OPEN]);
    expect(judgeFlow(gone, hostView(INTERFACES, gone), dnat('203.0.113.11'))).toEqual({
      containerId: undefined,
      containerName: undefined,
      target: 'catch-all 172.17.0.2:80/tcp',
    });
  });

  it('judges an address now another container’s by the new owner', () => {
    const other: ContainerSnapshot = {
      ...WEB,
      id: 'c'.repeat(64),
      name: 'other',
      labels: { 'dockfw.allow': '198.51.100.0/24' },
    };
    const swapped = state([other]);
    expect(judgeFlow(swapped, hostView(INTERFACES, swapped), dnat('203.0.113.11'))?.containerName).toBe(
      'other',
    );
  });
});

describe('whether a new desired state narrowed the old one', () => {
  const before = state([WEB, OPEN]);

  it('is false for the same state and for a wider one', () => {
    expect(narrowed(before, state([WEB, OPEN]))).toBe(false);
    const wider = { ...WEB, labels: { 'dockfw.allow': '203.0.113.0/24, 2001:db8:1::11' } };
    expect(narrowed(before, state([wider, OPEN]))).toBe(false);
  });

  it('is true when a source goes, a target is newly guarded, a container stops, or an address changes hands', () => {
    expect(narrowed(before, state([{ ...WEB, labels: { 'dockfw.allow': '2001:db8:1::11' } }, OPEN]))).toBe(
      true,
    );
    expect(narrowed(before, state([WEB, { ...OPEN, labels: { 'dockfw.allow': '203.0.113.11' } }]))).toBe(
      true,
    );
    expect(narrowed(before, state([WEB]))).toBe(true);
    expect(narrowed(before, state([WEB, OPEN], { DOCKFW_DEFAULT_POLICY: 'deny' }))).toBe(true);
    expect(narrowed(before, state([{ ...WEB, id: 'd'.repeat(64) }, OPEN]))).toBe(true);
  });
});

describe('narrowed, per part', () => {
  it('answers as the whole states do, whenever both come in parts', () => {
    let inParts = 0;
    fc.assert(
      fc.property(
        fc.uniqueArray(crowdedContainer, { maxLength: 6, selector: (c) => c.id }),
        fc.array(fc.nat(5), { maxLength: 6 }),
        fc.array(fc.nat(5), { maxLength: 6 }),
        fc.array(crowdedContainer, { maxLength: 2 }),
        (pool, pickA, pickB, fresh) => {
          const config = loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny' });
          const pick = (picks: number[]) => [
            ...new Set(picks.map((i) => pool[i]).filter((c) => c !== undefined)),
          ];
          // A fresh container may be a new version of one picked before (same id).
          const before = pick(pickA);
          const renewed = fresh.map((c, i) => ({ ...c, id: before[i]?.id ?? c.id }));
          const ids = new Set(renewed.map((c) => c.id));
          const after = [...pick(pickB).filter((c) => !ids.has(c.id)), ...renewed];
          const a = desiredState({ containers: before, bridges: [] }, config);
          const b = desiredState({ containers: after, bridges: [] }, config);
          const wholeA = desiredState({ containers: before, bridges: [] }, config, { parts: false });
          const wholeB = desiredState({ containers: after, bridges: [] }, config, { parts: false });
          if (a.parts !== undefined && b.parts !== undefined) inParts++;
          expect(narrowed(a, b)).toBe(narrowed(wholeA, wholeB));
        },
      ),
      { numRuns: 400 },
    );
    expect(inParts).toBeGreaterThan(50);
  });
});
