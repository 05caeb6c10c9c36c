import { describe, expect, it } from 'vitest';
import { parseFilterTable } from './iptables/read.js';
import { renderPreroutingPayload, renderSyncPayload } from './iptables/render.js';
import { familySets, SET_TYPES, setName } from './iptables/sets.js';
import { tableSpec } from './nftables/elements.js';
import type { TableSeen } from './nftables/read.js';
import { chainRules, publishedRules, ruleComment } from './nftables/render.js';
import { BASE_CHAINS } from './nftables/names.js';
import { loadConfig } from '../config/config.js';
import type { ContainerSnapshot, EngineSnapshot } from '../docker/snapshot.js';
import { desiredState, type DesiredState } from '../policy/desired.js';
import { explain } from '../explain/decide.js';
import { intervalOf, type KernelView } from './kernel-check.js';
import { formatTarget, parseQuery } from '../explain/query.js';
import { buildReport, exitCode, renderText, toJson } from '../explain/report.js';

const web: ContainerSnapshot = {
  id: 'ab'.repeat(32),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '203.0.113.0/24' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 }],
};
const snapshot: EngineSnapshot = { containers: [web], bridges: ['docker0'] };
const config = loadConfig({});
const desired = desiredState(snapshot, config);

function report(source: string, target: string, view: KernelView | undefined, state: DesiredState = desired) {
  const query = parseQuery(source, target);
  const explanation = explain(snapshot, state, query, config.defaultPolicy, formatTarget(query.target));
  return buildReport(state, explanation, view);
}

/** What a sync writes, as iptables-save would list it back. */
function iptablesView(
  state: DesiredState,
  edit: (save: string) => string = (s) => s,
  dropElement: (set: string, element: string) => boolean = () => false,
): KernelView {
  const mangle = renderPreroutingPayload(state, 4, { parent: 'PREROUTING', positions: [] }).replace(
    /^-I PREROUTING 1 /m,
    '-A PREROUTING ',
  );
  const filter = renderSyncPayload(state, 4, { parent: 'DOCKER-USER', positions: [] }).replace(
    /^-I DOCKER-USER 1 /m,
    '-A DOCKER-USER ',
  );
  const text = edit(mangle + filter);
  return {
    backend: 'iptables',
    families: {
      4: {
        variant: 'nft',
        parent: 'DOCKER-USER',
        mangle: parseFilterTable(text, 'mangle'),
        filter: parseFilterTable(text, 'filter'),
        sets: new Map(
          [...familySets(state, 4)].map(([role, elements]) => [
            setName(role, 4),
            {
              type: SET_TYPES[role],
              family: 'inet',
              maxelem: 65536,
              elements: new Set([...elements].filter((e) => !dropElement(setName(role, 4), e))),
            },
          ]),
        ),
      },
    },
  };
}

/** What a sync writes, as `nft -j list` would read back. */
function nftView(
  state: DesiredState,
  drop: (set: string, element: string) => boolean = () => false,
): KernelView {
  const spec = tableSpec(state);
  const table: TableSeen = {
    chains: new Map(
      BASE_CHAINS.map((c) => [
        c.name,
        {
          type: 'filter',
          hook: c.hook,
          priority: c.priority,
          policy: 'accept',
          rules: (c.hook === 'prerouting' ? publishedRules(spec) : chainRules(spec)).map((r) =>
            ruleComment(r.role),
          ),
        },
      ]),
    ),
    sets: new Map(
      [...spec.sets].map(([name, elements]) => [
        name,
        { type: [], flags: ['interval'], elements: elements.filter((e) => !drop(name, e)), unreadable: 0 },
      ]),
    ),
  };
  return { backend: 'nftables', table };
}

describe('kernel check, iptables', () => {
  it('holds the RETURN that lets an allowed source in, on the binding and the container address', () => {
    const r = report('203.0.113.7', '203.0.113.1:8080', iptablesView(desired));
    expect(r.kernel).toEqual({ backend: 'iptables', status: 'holds' });
    const [binding, container] = r.checks[0] ?? [];
    expect(binding?.status).toBe('holds');
    expect(binding?.expected).toEqual([
      'PREROUTING -j DOCKFW-PRE',
      'DOCKFW-PRE -j DOCKFW-PUBLISHED',
      'DOCKFW-PUBLISHED -m set --match-set dockfw-boundany4 src,dst -j RETURN',
      'dockfw-boundany4: 203.0.113.0/24,tcp:8080',
    ]);
    expect(container?.status).toBe('holds');
    expect(container?.expected.slice(-2)).toEqual([
      'DOCKFW-IN -m set --match-set dockfw-allowed4 dst,dst,src -j RETURN',
      'dockfw-allowed4: 172.17.0.2,tcp:80,203.0.113.0/24',
    ]);
    expect(renderText(r)).toContain('kernel: holds the rule');
  });

  it('holds the DROP for a denied source', () => {
    const r = report('198.51.100.7', '203.0.113.1:8080', iptablesView(desired));
    expect(r.checks[0]?.map((c) => c.expected.slice(2))).toEqual([
      [
        'DOCKFW-PUBLISHED -m set --match-set dockfw-bound4 dst,dst -j DOCKFW-DROP',
        'dockfw-bound4: 0.0.0.0/1,tcp:8080',
        'dockfw-bound4: 128.0.0.0/1,tcp:8080',
      ],
      [
        'DOCKFW-IN -m set --match-set dockfw-guarded4 dst,dst -j DOCKFW-DROP',
        'dockfw-guarded4: 172.17.0.2,tcp:80',
      ],
    ]);
    expect(r.kernel.status).toBe('holds');
    expect(exitCode(r)).toBe(1);
  });

  it('says missing when the binding rules were flushed behind its back', () => {
    const flushed = iptablesView(desired, (save) =>
      save
        .split('\n')
        .filter((l) => !l.startsWith('-A DOCKFW-PUBLISHED'))
        .join('\n'),
    );
    const r = report('203.0.113.7', '203.0.113.1:8080', flushed);
    expect(r.kernel.status).toBe('missing');
    expect(r.checks[0]?.map((c) => c.status)).toEqual(['missing', 'holds']);
    expect(r.checks[0]?.[0]?.missing).toHaveLength(1);
    expect(renderText(r)).toMatch(
      /kernel: missing\n {6}missing: DOCKFW-PUBLISHED -m set --match-set dockfw-boundany4 src,dst -j RETURN/,
    );
  });

  it('says missing when the allowing element is gone from its set (an ipset flush)', () => {
    const flushed = iptablesView(desired, undefined, (set) => set === 'dockfw-allowed4');
    const r = report('203.0.113.7', '203.0.113.1:8080', flushed);
    expect(r.checks[0]?.map((c) => c.status)).toEqual(['holds', 'missing']);
    expect(r.checks[0]?.[1]?.missing).toEqual(['dockfw-allowed4: 172.17.0.2,tcp:80,203.0.113.0/24']);
  });

  it('says missing without the jump', () => {
    const r = report(
      '203.0.113.7',
      '203.0.113.1:8080',
      iptablesView(desired, (save) => save.replace('-A DOCKER-USER -j DOCKFW\n', '')),
    );
    expect(r.checks[0]?.[1]?.missing).toEqual(['DOCKER-USER -j DOCKFW']);
  });

  it('needs no binding rule for a port open to everyone, and holds the explicit RETURN after DNAT', () => {
    const open = desiredState({ containers: [{ ...web, labels: {} }], bridges: ['docker0'] }, config);
    const r = report('198.51.100.7', '203.0.113.1:8080', iptablesView(open), open);
    expect(r.checks[0]?.map((c) => c.status)).toEqual(['not-needed', 'holds']);
    expect(r.kernel.status).toBe('holds');
  });

  it('says when a family could not be read', () => {
    const r = report('203.0.113.7', '203.0.113.1:8080', {
      backend: 'iptables',
      families: {},
      reasons: { 4: 'iptables-nft-save failed' },
    });
    expect(r.kernel.status).toBe('not-checked');
    expect(r.checks[0]?.[0]?.note).toBe('iptables-nft-save failed');
  });
});

describe('kernel check, nftables', () => {
  it('holds the elements for an allowed and a denied source', () => {
    const allowed = report('203.0.113.7', '203.0.113.1:8080', nftView(desired));
    expect(allowed.checks[0]?.map((c) => c.expected)).toEqual([
      [
        'chain published: rule "dockfw bound-allowed4"',
        'boundallowed4: 8080 . tcp . 0.0.0.0/0 . 203.0.113.0/24',
      ],
      ['chain forward: rule "dockfw allowed4"', 'allowed4: 172.17.0.2 . tcp . 80 . 203.0.113.0/24'],
    ]);
    expect(allowed.kernel).toEqual({ backend: 'nftables', status: 'holds' });
    const denied = report('198.51.100.7', '203.0.113.1:8080', nftView(desired));
    expect(denied.checks[0]?.map((c) => c.expected.at(-1))).toEqual([
      'bound4: 8080 . tcp . 0.0.0.0/0',
      'guarded4: 172.17.0.2 . tcp . 80',
    ]);
    expect(denied.kernel.status).toBe('holds');
  });

  it('says missing when an element was deleted, or the table is gone', () => {
    const deleted = nftView(desired, (set) => set === 'boundallowed4');
    const r = report('203.0.113.7', '203.0.113.1:8080', deleted);
    expect(r.kernel.status).toBe('missing');
    expect(r.checks[0]?.[0]?.missing).toEqual(['boundallowed4: 8080 . tcp . 0.0.0.0/0 . 203.0.113.0/24']);
    const gone = report('203.0.113.7', '203.0.113.1:8080', { backend: 'nftables', table: undefined });
    expect(gone.checks[0]?.[0]).toMatchObject({
      status: 'missing',
      note: 'table inet dockfw is not in the kernel',
    });
  });

  it('offline: not checked, and the JSON says so', () => {
    const r = report('203.0.113.7', '203.0.113.1:8080', undefined);
    expect(r.kernel).toEqual({ status: 'not-checked', reason: 'offline' });
    expect(renderText(r)).toContain('kernel: not checked (offline)');
    const json = JSON.parse(JSON.stringify(toJson(r))) as { verdict: string; paths: { kind: string }[] };
    expect(json.verdict).toBe('allowed');
    expect(json.paths[0]?.kind).toBe('dnat');
  });
});

describe('intervalOf', () => {
  it('reads an address, a block and a range', () => {
    expect(intervalOf(4, '203.0.113.7')).toEqual({ start: 0xcb007107n, end: 0xcb007107n });
    expect(intervalOf(4, '203.0.113.0/24')).toEqual({ start: 0xcb007100n, end: 0xcb0071ffn });
    expect(intervalOf(6, '2001:db8::1-2001:db8::ff')).toEqual({
      start: 0x20010db8000000000000000000000001n,
      end: 0x20010db80000000000000000000000ffn,
    });
    expect(intervalOf(4, 'nonsense')).toBeUndefined();
  });
});
