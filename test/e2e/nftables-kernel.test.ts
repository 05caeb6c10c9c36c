// The nftables backend against a real kernel, in a throwaway network namespace
// (needs root): payloads load (`nft -c` and for real), read back with no drift,
// later syncs write only changed elements, drift is repaired, uninstall leaves
// nothing, and the rule count does not grow with the number of containers.
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CommandError, type CommandRunner } from '../../src/backends/command.js';
import { tableSpec } from '../../src/backends/nftables/elements.js';
import { readTable } from '../../src/backends/nftables/read.js';
import { NftablesReconciler, type WriteKind } from '../../src/backends/nftables/reconcile.js';
import { diffTable, needsWrite } from '../../src/backends/nftables/drift.js';
import { renderTablePayload } from '../../src/backends/nftables/render.js';
import { uninstallNftables } from '../../src/backends/nftables/uninstall.js';
import type { ContainerSnapshot } from '../../src/docker/snapshot.js';
import { loadConfig } from '../../src/config/config.js';
import { desiredState, type DesiredState } from '../../src/policy/desired.js';
import { fixtureState, randomStates } from '../support/states.js';

const PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const ns = `dockfw-nk-${process.pid}`;

/** `nft` inside the namespace, failing like the real runner does. */
const nftInNs: CommandRunner = async (file, args, input) => {
  const result = await execa('ip', ['netns', 'exec', ns, file, ...args], {
    env: { PATH },
    reject: false,
    ...(input === undefined ? {} : { input }),
  });
  if (result.exitCode !== 0)
    throw new CommandError(
      `${file} ${args.join(' ')} failed: ${result.stderr}`,
      file,
      args,
      result.stderr,
      false,
    );
  return { stdout: result.stdout };
};

async function nft(args: string[], input?: string): Promise<string> {
  return (await nftInNs('nft', args, input)).stdout;
}

/** Random but valid engines, including two containers on one address and bridges named br-…. */
const randomEngines = (count: number) =>
  randomStates(count, {
    seed: 7,
    ipv4: fc.constantFrom('10.0.0.1', '10.0.0.2', '172.17.0.9'),
    maxContainers: 5,
    bridge: /^(?:br-)?[a-z][a-z0-9_-]{0,11}$/,
    maxBridges: 3,
    externalInterfaces: ['', 'eth0,wlan0', 'eth+,eth0'],
  });

const WEB: ContainerSnapshot = {
  id: 'a'.repeat(64),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '203.0.113.10, 198.51.100.0/24' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
};

function many(count: number): DesiredState {
  const containers: ContainerSnapshot[] = Array.from({ length: count }, (_, i) => ({
    ...WEB,
    id: i.toString(16).padStart(64, '0'),
    name: `c${i}`,
    labels:
      i % 3 === 0
        ? { 'dockfw.allow': `203.0.113.${i % 250}, 198.51.100.0/24` }
        : i % 3 === 1
          ? {}
          : { 'dockfw.allow': 'any' },
    networks: [
      { network: 'n', ipv4: `10.${Math.floor(i / 250)}.${i % 250}.2`, ipv6: `fd00::${i.toString(16)}:2` },
    ],
    ports: [
      { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 10000 + i },
      { containerPort: 53, protocol: 'udp', hostIp: '', hostPort: 20000 + i },
    ],
  }));
  return desiredState({ containers, bridges: ['docker0'] }, loadConfig({}));
}

/** Rules in dockfw's chain as the kernel lists them. */
async function chainRuleCount(): Promise<number> {
  const json = JSON.parse(await nft(['-j', 'list', 'table', 'inet', 'dockfw'])) as { nftables: object[] };
  return json.nftables.filter((item) => 'rule' in item).length;
}

describe('nftables backend on a real kernel', () => {
  beforeAll(async () => {
    await execa('ip', ['netns', 'add', ns], { env: { PATH } });
  });
  afterAll(async () => {
    await execa('ip', ['netns', 'del', ns], { env: { PATH }, reject: false });
  });
  afterEach(async () => {
    await nft(['-f', '-'], 'add table inet dockfw\ndelete table inet dockfw\n');
  });

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
    ...randomEngines(12).map((state, i): [string, DesiredState] => [`random engine ${i}`, state]),
  ];

  it.each(CASES)(
    '%s: loads, reads back with no drift, and a second sync writes nothing',
    async (_name, desired) => {
      const payload = renderTablePayload(tableSpec(desired));
      await nft(['-c', '-f', '-'], payload);
      const writes: WriteKind[] = [];
      const reconciler = new NftablesReconciler({ run: nftInNs, onWrite: (kind) => writes.push(kind) });
      await reconciler.reconcile(desired);
      expect(diffTable(tableSpec(desired), await readTable(nftInNs))).toEqual({
        structural: [],
        rulesMissing: [],
        rulesUnexpected: [],
        reordered: false,
        changes: [],
      });
      const again = await reconciler.reconcile(desired);
      expect(again.map((r) => r.written)).toEqual([false, false]);
      expect(writes).toEqual(['table']);
    },
  );

  it.each(CASES.slice(0, 4))(
    '%s, fast path on: loads, reads back with no drift, and a second sync writes nothing',
    async (_name, desired) => {
      const spec = { ...tableSpec(desired), fastPath: true };
      await nft(['-c', '-f', '-'], renderTablePayload(spec));
      const writes: WriteKind[] = [];
      const reconciler = new NftablesReconciler({
        run: nftInNs,
        fastPath: true,
        onWrite: (kind) => writes.push(kind),
      });
      await reconciler.reconcile(desired);
      expect(needsWrite(diffTable(spec, await readTable(nftInNs)))).toBe(false);
      // The strict table is not the fast one: switching rewrites it.
      expect(needsWrite(diffTable(tableSpec(desired), await readTable(nftInNs)))).toBe(true);
      const again = await reconciler.reconcile(desired);
      expect(again.map((r) => r.written)).toEqual([false, false]);
      expect(writes).toEqual(['table']);
      const listed = await nft(['list', 'table', 'inet', 'dockfw']);
      expect(listed).toContain(
        'ct state established ct direction original fib saddr . iif oif exists return',
      );
      expect(listed).toContain('ct direction reply ip daddr . meta l4proto . th dport != @guarded4 return');
    },
  );

  it('moves from one random engine to the next by element changes only, ending exactly right', async () => {
    const states = randomEngines(10).filter((s) => s.externalInterfaces.length === 0);
    const writes: WriteKind[] = [];
    const reconciler = new NftablesReconciler({ run: nftInNs, onWrite: (kind) => writes.push(kind) });
    for (const state of states) {
      await reconciler.reconcile(state);
      expect(needsWrite(diffTable(tableSpec(state), await readTable(nftInNs)))).toBe(false);
    }
    expect(writes[0]).toBe('table');
    expect(writes.slice(1).every((k) => k === 'elements')).toBe(true);
  });

  it('repairs a flushed chain, a flushed set and a deleted table; uninstall removes only its table', async () => {
    const desired = fixtureState('example-inspect.json', {}, ['docker0']);
    const reconciler = new NftablesReconciler({ run: nftInNs });
    await reconciler.reconcile(desired);
    for (const damage of [
      'flush chain inet dockfw forward',
      'flush set inet dockfw guarded4',
      'delete table inet dockfw',
      // Every base chain off at once; nft 1.0.6 then prints the table's JSON cut short.
      'add table inet dockfw { flags dormant; }',
    ]) {
      await nft(['-f', '-'], `${damage}\n`);
      const reports = await reconciler.reconcile(desired);
      expect(reports[0]?.written, damage).toBe(true);
      expect(needsWrite(diffTable(tableSpec(desired), await readTable(nftInNs))), damage).toBe(false);
      expect(await nft(['-t', 'list', 'table', 'inet', 'dockfw']), damage).not.toMatch(/dormant/);
    }
    const flushed = await (async () => {
      await nft(['-f', '-'], 'flush chain inet dockfw forward\n');
      return reconciler.reconcile(desired);
    })();
    expect(flushed[0]?.drift.missing).toContain('rule dockfw catch-all');

    await nft(
      ['-f', '-'],
      'table ip other {\n\tchain c {\n\t\ttype filter hook forward priority 0;\n\t}\n}\n',
    );
    expect(await uninstallNftables(nftInNs)).toEqual({ removed: true, table: 'inet dockfw' });
    expect(await nft(['list', 'tables'])).toBe('table ip other');
    expect(await uninstallNftables(nftInNs)).toEqual({ removed: false, table: 'inet dockfw' });
    await nft(['delete', 'table', 'ip', 'other']);
  });

  it('has as many rules with 1,000 labeled containers as with 10, and loads 1,000 for real', async () => {
    const reconciler = new NftablesReconciler({ run: nftInNs });
    await reconciler.reconcile(many(10));
    const ten = await chainRuleCount();
    const started = Date.now();
    await reconciler.reconcile(many(1000));
    const loadMs = Date.now() - started;
    const thousand = await chainRuleCount();
    expect(thousand).toBe(ten);
    // Eight in each base chain (published, forward), two in each drop record chain (drop4, drop6).
    expect(ten).toBe(20);
    const seen = await readTable(nftInNs);
    // 1,000 containers × 2 ports: 334 labeled with two sources; 666 open to any
    // (333 by label, 333 unlabeled under policy allow), which need no guard.
    expect(seen?.sets.get('allowed4')?.elements).toHaveLength(334 * 2 * 2 + 666 * 2);
    expect(seen?.sets.get('guarded4')?.elements).toHaveLength(334 * 2);
    expect(seen?.sets.get('guarded6')?.elements).toHaveLength(334 * 2);
    // The same on the published bindings (every address, host ports): IPv4-only lists close IPv6.
    expect(seen?.sets.get('boundallowed4')?.elements).toHaveLength(334 * 2 * 2);
    expect(seen?.sets.get('bound4')?.elements).toHaveLength(334 * 2);
    expect(seen?.sets.get('bound6')?.elements).toHaveLength(334 * 2);
    expect(seen?.sets.get('boundallowed6')?.elements).toHaveLength(0);
    expect(needsWrite(diffTable(tableSpec(many(1000)), seen))).toBe(false);
    // One container changes: one small element payload, not the table.
    const payloads: string[] = [];
    const watching = new NftablesReconciler({ run: nftInNs, onWrite: (_k, p) => payloads.push(p) });
    const changed = many(1000);
    const next: DesiredState = {
      ...changed,
      rules: changed.rules.filter((r) => !r.address.startsWith('10.0.0.')),
    };
    await watching.reconcile(next);
    expect(payloads).toHaveLength(1);
    expect(
      payloads[0]
        ?.split('\n')
        .filter((l) => l !== '')
        .every((l) => l.startsWith('delete element')),
    ).toBe(true);
    console.log(`nftables: 1,000 containers loaded in ${loadMs} ms; ${thousand} rules in the chain`);
  });
});
