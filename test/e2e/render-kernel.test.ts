// The rendered payloads against a real kernel: iptables-restore accepts them in both
// variants (nft and legacy) once the verdict sets they look up are loaded, iptables-save
// prints our rules back exactly as rendered, ipset save holds exactly the rendered
// elements, the jump is repaired, and uninstall leaves nothing. Runs in throwaway network
// namespaces only (needs root).
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  renderPreroutingPayload,
  renderSyncPayload,
  renderUninstallPayload,
} from '../../src/backends/iptables/render.js';
import {
  diffSets,
  familySets,
  parseSetSave,
  renderSetsFull,
  SET_ROLES,
  setName,
  setsDiffer,
} from '../../src/backends/iptables/sets.js';
import type { Family } from '../../src/docker/snapshot.js';
import { loadConfig } from '../../src/config/config.js';
import { desiredState, type DesiredState } from '../../src/policy/desired.js';
import { fixtureState, randomStates } from '../support/states.js';

const PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const VARIANTS = ['nft', 'legacy'] as const;
type Variant = (typeof VARIANTS)[number];

function tool(family: Family, variant: Variant, suffix: '' | '-restore' | '-save'): string {
  return `${family === 4 ? 'iptables' : 'ip6tables'}-${variant}${suffix}`;
}

async function inNetns(ns: string, command: string[], input?: string): Promise<string> {
  const result = await execa('ip', ['netns', 'exec', ns, ...command], {
    env: { PATH },
    ...(input === undefined ? {} : { input }),
  });
  return result.stdout;
}

async function applyPayload(ns: string, family: Family, variant: Variant, payload: string, test = false) {
  await inNetns(
    ns,
    [tool(family, variant, '-restore'), '--noflush', '-w', ...(test ? ['--test'] : [])],
    payload,
  );
}

/** The family's verdict sets as the first sync writes them (the payloads' rules look them up). */
async function loadSets(ns: string, family: Family, desired: DesiredState): Promise<void> {
  await inNetns(
    ns,
    ['ipset', 'restore'],
    renderSetsFull(family, familySets(desired, family), new Set(), new Set()),
  );
}

/** What differs between the family's sets in the kernel and the ones rendered for `desired`. */
async function setsDiff(ns: string, family: Family, desired: DesiredState) {
  const names = SET_ROLES.map((role) => setName(role, family));
  const text = (await Promise.all(names.map((name) => inNetns(ns, ['ipset', 'save', name])))).join('\n');
  return diffSets(family, familySets(desired, family), parseSetSave(text, new Set(names)));
}

/** dockfw's sets in the namespace. */
async function ownSets(ns: string): Promise<string[]> {
  return (await inNetns(ns, ['ipset', 'list', '-n'])).split('\n').filter((n) => n.startsWith('dockfw-'));
}

/** Our lines and the parent chain's rules, as iptables-save prints them. */
async function saved(ns: string, family: Family, variant: Variant, table = 'filter', parent = 'DOCKER-USER') {
  const lines = (await inNetns(ns, [tool(family, variant, '-save'), '-t', table])).split('\n');
  return {
    chains: lines.filter((l) => /^:DOCKFW/.test(l)).map((l) => l.split(' ')[0]),
    owned: lines.filter((l) => l.startsWith('-A DOCKFW')),
    parent: lines.filter((l) => l.startsWith(`-A ${parent}`)),
  };
}

/** Random but valid engines, to cover combinations the fixtures do not. */
const randomEngines = (count: number) =>
  randomStates(count, {
    seed: 42,
    ipv4: fc.ipV4(),
    maxContainers: 4,
    bridge: /^[a-z][a-z0-9_-]{0,14}$/,
    maxBridges: 2,
    externalInterfaces: ['', 'eth0,wlan0'],
  });

/** IPv6 spellings where inet_ntop has choices to make: zero runs, ties, IPv4 tails. */
function trickyAddresses(): DesiredState {
  const container = (id: string, ipv6: string, allow: string) => ({
    id: id.repeat(64),
    name: `c${id}`,
    running: true,
    labels: { 'dockfw.allow': allow },
    networks: [{ network: 'n', ipv4: '10.0.0.1', ipv6 }],
    ports: [{ containerPort: 80, protocol: 'tcp' as const, hostIp: '', hostPort: 80 }],
  });
  return desiredState(
    {
      containers: [
        container('a', '2001:db8:0:1:1:1:1:1', '::1.2.3.4-::1.2.3.9, 2001:db8::1:0:0:1'),
        container('b', '2001:db8:0:0:1:0:0:1', '1:0:0:1:0:0:1:1, ::5, 0.0.0.1-0.0.0.3'),
        container('c', 'fd00::1:2:3:4', '2001:DB8::/33, 2001:db8:8000::-2001:db8:8000::ffff:ffff, ::/1'),
      ],
      bridges: [],
    },
    loadConfig({}),
  );
}

const CASES: [string, DesiredState][] = [
  ['example, default allow', fixtureState('example-inspect.json', {}, ['docker0', 'br-6a1f0e2d3c4b'])],
  [
    'multi-network, deny, external interfaces',
    fixtureState(
      'multi-network.json',
      { DOCKFW_DEFAULT_POLICY: 'deny', DOCKFW_EXTERNAL_INTERFACES: 'eth0,eth1' },
      ['docker0', 'lan0'],
    ),
  ],
  ['multi-network, default allow', fixtureState('multi-network.json', {}, ['docker0', 'lan0'])],
  ['addresses whose spelling is subtle', trickyAddresses()],
  ...randomEngines(8).map((state, i): [string, DesiredState] => [`random engine ${i}`, state]),
];

/** A payload's `-A` lines, chain by chain (iptables-save lists a table's chains by name; order within one is kept). */
function ownLines(payload: string): string[] {
  return byChain(payload.split('\n').filter((l) => l.startsWith('-A ')));
}

function byChain(rules: readonly string[]): string[] {
  const chainOf = (rule: string) => rule.split(' ')[1] ?? '';
  return [...rules].sort((a, b) => chainOf(a).localeCompare(chainOf(b)));
}

describe.each(VARIANTS)('iptables-%s', (variant) => {
  const ns = `dockfw-rk-${process.pid}-${variant}`;

  beforeAll(async () => {
    await execa('ip', ['netns', 'add', ns], { env: { PATH } });
    for (const family of [4, 6] as const) {
      await inNetns(ns, [tool(family, variant, ''), '-w', '-N', 'DOCKER-USER']);
    }
  });

  afterAll(async () => {
    await execa('ip', ['netns', 'del', ns], { env: { PATH }, reject: false });
  });

  /** Back to an empty DOCKER-USER and no chains of ours, whatever a failed test left. */
  async function reset(): Promise<void> {
    for (const family of [4, 6] as const) {
      for (const args of [
        ['-F', 'DOCKER-USER'],
        ['-F', 'DOCKFW'],
        ['-F', 'DOCKFW-IN'],
        ['-F', 'DOCKFW-DROP'],
        ['-X', 'DOCKFW'],
        ['-X', 'DOCKFW-IN'],
        ['-X', 'DOCKFW-DROP'],
        ['-t', 'mangle', '-F', 'PREROUTING'],
        ['-t', 'mangle', '-F', 'DOCKFW-PRE'],
        ['-t', 'mangle', '-F', 'DOCKFW-PUBLISHED'],
        ['-t', 'mangle', '-F', 'DOCKFW-DROP'],
        ['-t', 'mangle', '-X', 'DOCKFW-PRE'],
        ['-t', 'mangle', '-X', 'DOCKFW-PUBLISHED'],
        ['-t', 'mangle', '-X', 'DOCKFW-DROP'],
      ]) {
        await execa('ip', ['netns', 'exec', ns, tool(family, variant, ''), '-w', ...args], {
          env: { PATH },
          reject: false,
        });
      }
    }
    // The sets last: a set still referenced by a rule cannot be destroyed.
    for (const name of await ownSets(ns)) {
      await execa('ip', ['netns', 'exec', ns, 'ipset', 'destroy', name], { env: { PATH }, reject: false });
    }
    expect(await ownSets(ns)).toEqual([]);
  }

  afterEach(reset);

  it.each(CASES)('%s: applies, reads back exactly, and repairs the jump', async (_name, desired) => {
    for (const family of [4, 6] as const) {
      await loadSets(ns, family, desired);
      expect(setsDiffer(await setsDiff(ns, family, desired))).toBe(false);
      const first = renderSyncPayload(desired, family, { parent: 'DOCKER-USER', positions: [] });
      await applyPayload(ns, family, variant, first, true);
      await applyPayload(ns, family, variant, first);
      let now = await saved(ns, family, variant);
      expect(now.chains).toEqual([':DOCKFW', ':DOCKFW-DROP', ':DOCKFW-IN']);
      expect(byChain(now.owned)).toEqual(ownLines(first));
      expect(now.parent).toEqual(['-A DOCKER-USER -j DOCKFW']);

      // The published bindings (mangle, before DNAT) read back exactly too.
      const pre = renderPreroutingPayload(desired, family, { parent: 'PREROUTING', positions: [] });
      await applyPayload(ns, family, variant, pre, true);
      await applyPayload(ns, family, variant, pre);
      const mangle = await saved(ns, family, variant, 'mangle', 'PREROUTING');
      expect(byChain(mangle.owned)).toEqual(ownLines(pre));
      expect(mangle.parent).toEqual(['-A PREROUTING -j DOCKFW-PRE']);
      await applyPayload(
        ns,
        family,
        variant,
        renderUninstallPayload(
          {
            parent: 'PREROUTING',
            jumpPositions: [1],
            ownedChains: mangle.chains.map((c) => (c ?? '').slice(1)),
          },
          'mangle',
          'DOCKFW-PRE',
        ),
      );
      expect(await saved(ns, family, variant, 'mangle', 'PREROUTING')).toEqual({
        chains: [],
        owned: [],
        parent: [],
      });

      // Someone inserts a rule above the jump: the next sync moves the jump back to 1.
      await inNetns(ns, [
        tool(family, variant, ''),
        '-w',
        '-I',
        'DOCKER-USER',
        '1',
        '-p',
        'udp',
        '-j',
        'DROP',
      ]);
      const again = renderSyncPayload(desired, family, { parent: 'DOCKER-USER', positions: [2] });
      await applyPayload(ns, family, variant, again);
      now = await saved(ns, family, variant);
      expect(byChain(now.owned)).toEqual(ownLines(first));
      expect(now.parent).toEqual(['-A DOCKER-USER -j DOCKFW', '-A DOCKER-USER -p udp -j DROP']);

      // A steady-state sync leaves the jump alone.
      await applyPayload(
        ns,
        family,
        variant,
        renderSyncPayload(desired, family, { parent: 'DOCKER-USER', positions: [1] }),
      );
      expect((await saved(ns, family, variant)).parent).toHaveLength(2);

      // Uninstall removes everything of ours and nothing else.
      await applyPayload(
        ns,
        family,
        variant,
        renderUninstallPayload({
          parent: 'DOCKER-USER',
          jumpPositions: [1],
          ownedChains: ['DOCKFW', 'DOCKFW-IN', 'DOCKFW-DROP'],
        }),
      );
      now = await saved(ns, family, variant);
      expect(now).toEqual({ chains: [], owned: [], parent: ['-A DOCKER-USER -p udp -j DROP'] });
      // No rule looks the sets up any more: every one of them can go.
      for (const role of SET_ROLES) await inNetns(ns, ['ipset', 'destroy', setName(role, family)]);
      expect(await ownSets(ns)).toEqual([]);
    }
  });

  it('rejects a whole payload when one line fails, changing nothing', async () => {
    const desired = CASES[0]?.[1];
    if (desired === undefined) throw new Error('no case');
    // The sets are there, so only the deletions below can make it fail.
    await loadSets(ns, 4, desired);
    await applyPayload(
      ns,
      4,
      variant,
      renderSyncPayload(desired, 4, { parent: 'DOCKER-USER', positions: [] }),
      true,
    );
    // Two deletions but no jump installed: the whole transaction must fail.
    const payload = renderSyncPayload(desired, 4, { parent: 'DOCKER-USER', positions: [1, 2] });
    await expect(applyPayload(ns, 4, variant, payload)).rejects.toThrow();
    expect(await saved(ns, 4, variant)).toEqual({ chains: [], owned: [], parent: [] });
  });
});
