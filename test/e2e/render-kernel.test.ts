// The rendered payloads against a real kernel: iptables-restore accepts them in both
// variants (nft and legacy), iptables-save prints our rules back exactly as rendered,
// the jump is repaired, and uninstall leaves nothing. Runs in throwaway network
// namespaces only (needs root).
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { renderSyncPayload, renderUninstallPayload } from '../../src/backends/iptables/render.js';
import { loadConfig } from '../../src/config/config.js';
import { parseInspectArray } from '../../src/docker/inspect.js';
import type { EngineSnapshot, Family, Protocol } from '../../src/docker/snapshot.js';
import { desiredState, type DesiredState } from '../../src/policy/desired.js';

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

/** Our lines and the parent chain's rules, as iptables-save prints them. */
async function saved(ns: string, family: Family, variant: Variant) {
  const lines = (await inNetns(ns, [tool(family, variant, '-save'), '-t', 'filter'])).split('\n');
  return {
    chains: lines.filter((l) => /^:DOCKFW/.test(l)).map((l) => l.split(' ')[0]),
    owned: lines.filter((l) => l.startsWith('-A DOCKFW')),
    parent: lines.filter((l) => l.startsWith('-A DOCKER-USER')),
  };
}

function fixture(name: string, env: Record<string, string>, bridges: string[]): DesiredState {
  const json: unknown = JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));
  return desiredState({ containers: parseInspectArray(json), bridges }, loadConfig(env));
}

/** Random but valid engines, to cover combinations the fixtures do not. */
function randomStates(count: number): DesiredState[] {
  const sources = fc.constantFrom(
    'any',
    'none',
    '203.0.113.0/24',
    '198.51.100.7, 198.51.100.9-198.51.100.30',
    '2001:db8::/48, 203.0.113.128/25',
    '2001:db8:1::5-2001:db8:1::9',
    '0.0.0.0/0',
    '::/0',
  );
  const engine: fc.Arbitrary<EngineSnapshot> = fc.record({
    containers: fc.array(
      fc.record({
        id: fc.stringMatching(/^[0-9a-f]{64}$/),
        name: fc.stringMatching(/^[a-z]{2,8}$/),
        running: fc.constant(true),
        labels: fc.dictionary(
          fc.constantFrom(
            'dockfw.allow',
            'dockfw.allow.80',
            'dockfw.allow.53/udp',
            'dockfw.allow.9000-9100/sctp',
          ),
          sources,
          { maxKeys: 3 },
        ),
        networks: fc.array(
          fc.record({
            network: fc.constantFrom('a', 'b'),
            ipv4: fc.ipV4(),
            ipv6: fc.constantFrom('fd00::2', 'fd00:1::abcd', '2001:db8:50::5'),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        ports: fc.array(
          fc.record({
            containerPort: fc.constantFrom(53, 80, 81, 82, 9000, 9050, 65535),
            protocol: fc.constantFrom<Protocol>('tcp', 'udp', 'sctp'),
            hostIp: fc.constant(''),
            hostPort: fc.constant(1),
          }),
          { minLength: 1, maxLength: 4 },
        ),
      }),
      { maxLength: 4 },
    ),
    bridges: fc.array(fc.stringMatching(/^[a-z][a-z0-9_-]{0,14}$/), { maxLength: 2 }),
  });
  const env = fc.record({
    DOCKFW_DEFAULT_POLICY: fc.constantFrom('allow', 'deny'),
    DOCKFW_EXTERNAL_INTERFACES: fc.constantFrom('', 'eth0,wlan0'),
  });
  return fc
    .sample(fc.tuple(engine, env), { numRuns: count, seed: 42 })
    .map(([e, c]) => desiredState(e, loadConfig(c)));
}

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
  ['example, default allow', fixture('example-inspect.json', {}, ['docker0', 'br-6a1f0e2d3c4b'])],
  [
    'multi-network, deny, external interfaces',
    fixture(
      'multi-network.json',
      { DOCKFW_DEFAULT_POLICY: 'deny', DOCKFW_EXTERNAL_INTERFACES: 'eth0,eth1' },
      ['docker0', 'lan0'],
    ),
  ],
  ['multi-network, default allow', fixture('multi-network.json', {}, ['docker0', 'lan0'])],
  ['addresses whose spelling is subtle', trickyAddresses()],
  ...randomStates(12).map((state, i): [string, DesiredState] => [`random engine ${i}`, state]),
];

function ownLines(payload: string): string[] {
  return payload.split('\n').filter((l) => l.startsWith('-A '));
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
        ['-X', 'DOCKFW'],
        ['-X', 'DOCKFW-IN'],
      ]) {
        await execa('ip', ['netns', 'exec', ns, tool(family, variant, ''), '-w', ...args], {
          env: { PATH },
          reject: false,
        });
      }
    }
  }

  afterEach(reset);

  it.each(CASES)('%s: applies, reads back exactly, and repairs the jump', async (_name, desired) => {
    for (const family of [4, 6] as const) {
      const first = renderSyncPayload(desired, family, { parent: 'DOCKER-USER', positions: [] });
      await applyPayload(ns, family, variant, first, true);
      await applyPayload(ns, family, variant, first);
      let now = await saved(ns, family, variant);
      expect(now.chains).toEqual([':DOCKFW', ':DOCKFW-IN']);
      expect(now.owned).toEqual(ownLines(first));
      expect(now.parent).toEqual(['-A DOCKER-USER -j DOCKFW']);

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
      expect(now.owned).toEqual(ownLines(first));
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
          ownedChains: ['DOCKFW', 'DOCKFW-IN'],
        }),
      );
      now = await saved(ns, family, variant);
      expect(now).toEqual({ chains: [], owned: [], parent: ['-A DOCKER-USER -p udp -j DROP'] });
    }
  });

  it('rejects a whole payload when one line fails, changing nothing', async () => {
    const desired = CASES[0]?.[1];
    if (desired === undefined) throw new Error('no case');
    // Two deletions but no jump installed: the whole transaction must fail.
    const payload = renderSyncPayload(desired, 4, { parent: 'DOCKER-USER', positions: [1, 2] });
    await expect(applyPayload(ns, 4, variant, payload)).rejects.toThrow();
    expect(await saved(ns, 4, variant)).toEqual({ chains: [], owned: [], parent: [] });
  });
});
