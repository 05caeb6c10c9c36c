import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { parseInspectArray } from '../../docker/inspect.js';
import type { ContainerSnapshot } from '../../docker/snapshot.js';
import { desiredState, type DesiredState } from '../../policy/desired.js';
import { CommandError, type CommandRunner } from '../command.js';
import { failedLineNumber } from './apply.js';
import { diffTable, familyDrift, needsWrite } from './drift.js';
import { tableSpec } from './elements.js';
import { fakeNft, tableJson } from './fake-nft.js';
import { FakeNftKernel } from './fake-nft-kernel.js';
import { elementText, parseTable } from './read.js';
import { NftablesReconciler } from './reconcile.js';
import { renderTablePayload } from './render.js';
import { uninstallNftables } from './uninstall.js';
import { secondWeb, webContainer } from '../../../test/support/states.js';

const fixtures = new URL('../../../test/fixtures/', import.meta.url);

const WEB = webContainer('203.0.113.10', {
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
});

function desired(containers: ContainerSnapshot[] = [WEB], env: Record<string, string> = {}): DesiredState {
  return desiredState({ containers, bridges: ['docker0'] }, loadConfig(env));
}

describe('reading nft -j output', () => {
  it('reads what the kernel printed for a loaded golden payload back into the same elements', () => {
    // Listed from a real kernel after loading nftables.multi-network.deny-external.golden.
    const listed = readFileSync(new URL('nftables.multi-network.list.json', fixtures), 'utf8');
    const json: unknown = JSON.parse(readFileSync(new URL('multi-network.json', fixtures), 'utf8'));
    const state = desiredState(
      { containers: parseInspectArray(json), bridges: ['docker0', 'br-0c1d2e3f4a5b', 'lan0'] },
      loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny', DOCKFW_EXTERNAL_INTERFACES: 'eth0,eth1' }),
    );
    const drift = diffTable(tableSpec(state), parseTable(listed));
    expect(drift).toEqual({
      structural: [],
      rulesMissing: [],
      rulesUnexpected: [],
      reordered: false,
      changes: [],
    });
    // And a different state is told apart.
    expect(needsWrite(diffTable(tableSpec(desired()), parseTable(listed)))).toBe(true);
  });

  it('spells prefixes, ranges and wrapped elements canonically, and refuses foreign ones', () => {
    const types = ['ipv4_addr', 'inet_proto', 'inet_service', 'ipv4_addr'];
    expect(
      elementText(types, {
        concat: ['172.17.0.2', 'tcp', { range: [80, 81] }, { prefix: { addr: '203.0.113.10', len: 31 } }],
      }),
    ).toBe('172.17.0.2 . tcp . 80-81 . 203.0.113.10/31');
    expect(
      elementText(types, { concat: ['172.17.0.2', 6, 80, { prefix: { addr: '203.0.113.0', len: 24 } }] }),
    ).toBe('172.17.0.2 . tcp . 80 . 203.0.113.0/24');
    expect(
      elementText(types, {
        elem: { val: { concat: ['172.17.0.2', 'udp', 53, '203.0.113.10'] }, counter: {} },
      }),
    ).toBe('172.17.0.2 . udp . 53 . 203.0.113.10');
    expect(
      elementText(['ipv6_addr', 'inet_proto', 'inet_service'], { concat: ['2001:DB8::0:1', 'sctp', 9] }),
    ).toBe('2001:db8::1 . sctp . 9');
    expect(elementText(['ifname'], 'br-*')).toBe('"br-*"');
    expect(elementText(types, { concat: ['172.17.0.2', 'icmp', 80, '203.0.113.10'] })).toBeUndefined();
    expect(elementText(types, { concat: ['172.17.0.2', 'tcp', 80] })).toBeUndefined();
    expect(elementText(['ifname'], 'a"; flush ruleset')).toBeUndefined();
  });
});

describe('comparing', () => {
  const spec = tableSpec(desired());

  it('finds nothing to do for the table it would write', () => {
    expect(needsWrite(diffTable(spec, parseTable(tableJson(spec))))).toBe(false);
  });

  it('needs only element changes when one container changed', () => {
    const moved = tableSpec(desired([{ ...WEB, networks: [{ network: 'bridge', ipv4: '172.17.0.9' }] }]));
    const drift = diffTable(moved, parseTable(tableJson(spec)));
    expect(drift.structural).toEqual([]);
    expect(drift.changes).toEqual([
      {
        set: 'allowed4',
        add: ['172.17.0.9 . tcp . 80 . 203.0.113.10'],
        delete: ['172.17.0.2 . tcp . 80 . 203.0.113.10'],
      },
      { set: 'guarded4', add: ['172.17.0.9 . tcp . 80'], delete: ['172.17.0.2 . tcp . 80'] },
      { set: 'guarded6', add: [], delete: ['2001:db8:ffff::2 . tcp . 80'] },
    ]);
    expect(familyDrift(drift, 6)).toEqual({
      missing: [],
      unexpected: ['set guarded6: 2001:db8:ffff::2 . tcp . 80'],
      reordered: false,
      structural: [],
    });
  });

  it('rewrites the table when a rule, a chain setting or a set declaration is off', () => {
    const without = (role: string) => (items: unknown[]) =>
      items.filter((i) => JSON.stringify(i).indexOf(`"dockfw ${role}"`) < 0);
    const flushed = diffTable(spec, parseTable(tableJson(spec, without('catch-all'))));
    expect(flushed.structural).toEqual(['chain forward rules']);
    expect(familyDrift(flushed, 4).missing).toEqual(['rule dockfw catch-all']);
    const swapped = diffTable(
      spec,
      parseTable(tableJson(spec, (items) => [...items.slice(0, -2), items.at(-1), items.at(-2)])),
    );
    expect(swapped.reordered).toBe(true);
    const retyped = (items: unknown[]) =>
      items.map((i) => JSON.parse(JSON.stringify(i).replace('"prio":-10', '"prio":0')) as unknown);
    expect(diffTable(spec, parseTable(tableJson(spec, retyped))).structural).toEqual(['chain forward']);
    const extra = (items: unknown[]) => [
      ...items,
      { set: { family: 'inet', table: 'dockfw', name: 'mine', type: 'ipv4_addr', flags: [] } },
    ];
    expect(diffTable(spec, parseTable(tableJson(spec, extra))).structural).toEqual(['set mine (not ours)']);
    expect(diffTable(spec, undefined).structural).toEqual(['table inet dockfw']);
  });
});

describe('NftablesReconciler', () => {
  it('writes nothing when the kernel matches, and reports both families in sync', async () => {
    const state = desired();
    const fake = fakeNft(tableJson(tableSpec(state)));
    const reports = await new NftablesReconciler({ run: fake.run }).reconcile(state);
    expect(reports.map((r) => [r.family, r.written])).toEqual([
      [4, false],
      [6, false],
    ]);
    expect(fake.payloads).toEqual([]);
  });

  it('tells what differs without writing', async () => {
    const fake = fakeNft(undefined);
    const drift = await new NftablesReconciler({ run: fake.run }).drift(desired());
    expect(drift.structural).toEqual(['table inet dockfw']);
    expect(fake.payloads).toEqual([]);
  });

  it('writes the whole table when there is none', async () => {
    const state = desired();
    const fake = fakeNft(undefined);
    const reports = await new NftablesReconciler({ run: fake.run }).reconcile(state);
    expect(fake.payloads).toEqual([renderTablePayload(tableSpec(state))]);
    expect(reports[0]?.drift.structural).toEqual(['table inet dockfw']);
    expect(reports[0]?.written).toBe(true);
  });

  it('writes only the changed elements when the table is intact', async () => {
    const kinds: string[] = [];
    const fake = fakeNft(tableJson(tableSpec(desired())));
    const next = desired([
      WEB,
      { ...WEB, id: 'b'.repeat(64), name: 'new', networks: [{ network: 'bridge', ipv4: '172.17.0.3' }] },
    ]);
    const reports = await new NftablesReconciler({ run: fake.run, onWrite: (k) => kinds.push(k) }).reconcile(
      next,
    );
    expect(fake.payloads).toEqual([
      'add element inet dockfw allowed4 { 172.17.0.3 . tcp . 80 . 203.0.113.10 }\n' +
        'add element inet dockfw guarded4 { 172.17.0.3 . tcp . 80 }\n',
    ]);
    expect(kinds).toEqual(['elements']);
    expect(reports.map((r) => r.written)).toEqual([true, false]);
    expect(reports.map((r) => r.desiredChanged)).toEqual([true, true]);
  });

  it('tells a write Docker asked for from drift: the same desired state written again is drift', async () => {
    const state = desired();
    const fake = fakeNft(tableJson(tableSpec(state)));
    const reconciler = new NftablesReconciler({ run: fake.run });
    await reconciler.reconcile(state);
    fake.listing = tableJson(tableSpec(state), (items) =>
      items.filter((i) => !JSON.stringify(i).includes('catch-all')),
    );
    const reports = await reconciler.reconcile(state);
    expect(reports.map((r) => [r.written, r.desiredChanged])).toEqual([
      [true, false],
      [false, false],
    ]);
  });

  describe('after container events alone (trustLastSync)', () => {
    const NEW: ContainerSnapshot = {
      ...WEB,
      id: 'b'.repeat(64),
      name: 'new',
      networks: [{ network: 'bridge', ipv4: '172.17.0.3' }],
    };
    const ADDED =
      'add element inet dockfw allowed4 { 172.17.0.3 . tcp . 80 . 203.0.113.10 }\n' +
      'add element inet dockfw guarded4 { 172.17.0.3 . tcp . 80 }\n';

    function counting(fake: ReturnType<typeof fakeNft>): { run: CommandRunner; reads: () => number } {
      let reads = 0;
      return {
        run: (file, args, input) => {
          if (args[0] !== '-f') reads++;
          return fake.run(file, args, input);
        },
        reads: () => reads,
      };
    }

    it('writes the element difference from what the last sync left, without reading the table', async () => {
      const fake = fakeNft(tableJson(tableSpec(desired())));
      const { run, reads } = counting(fake);
      const reconciler = new NftablesReconciler({ run });
      await reconciler.reconcile(desired());
      const readsBefore = reads();
      const reports = await reconciler.reconcile(desired([WEB, NEW]), { trustLastSync: true });
      expect(reads()).toBe(readsBefore);
      expect(fake.payloads).toEqual([ADDED]);
      expect(reports.map((r) => r.written)).toEqual([true, false]);
      // And back: the elements go again, still without a read.
      await reconciler.reconcile(desired(), { trustLastSync: true });
      expect(reads()).toBe(readsBefore);
      expect(fake.payloads[1]).toBe(ADDED.replaceAll('add element', 'delete element'));
    });

    it('reads first when nothing is known yet, when not trusted, and after a failed sync', async () => {
      const fake = fakeNft(tableJson(tableSpec(desired())));
      const { run, reads } = counting(fake);
      const reconciler = new NftablesReconciler({ run });
      await reconciler.reconcile(desired(), { trustLastSync: true });
      expect(reads()).toBeGreaterThan(0);
      const afterFirst = reads();
      await reconciler.reconcile(desired());
      expect(reads()).toBeGreaterThan(afterFirst);
      // Someone deleted the table: the periodic check's read finds it and writes it whole.
      fake.listing = undefined;
      const afterSecond = reads();
      await reconciler.reconcile(desired(), { trustLastSync: false });
      expect(reads()).toBeGreaterThan(afterSecond);
      expect(fake.payloads).toEqual([renderTablePayload(tableSpec(desired()))]);
    });

    it('writes the table whole when the kernel refuses the difference (it changed behind dockfw)', async () => {
      const fake = fakeNft(tableJson(tableSpec(desired())));
      const reconciler = new NftablesReconciler({
        run: (file, args, input) => {
          // The first element write fails as nft does when the set is gone.
          if (args[0] === '-f' && input?.startsWith('add element') === true)
            return Promise.reject(
              new CommandError(
                'nft -f - failed',
                file,
                args,
                '/dev/stdin:1:1-3: Error: No such file\n',
                false,
              ),
            );
          return fake.run(file, args, input);
        },
      });
      await reconciler.reconcile(desired());
      await reconciler.reconcile(desired([WEB, NEW]), { trustLastSync: true });
      expect(fake.payloads).toEqual([renderTablePayload(tableSpec(desired([WEB, NEW])))]);
    });

    it("says a write repaired someone else's change when the kernel refused the difference, or held more than a container's change; not for the change alone", async () => {
      const fake = fakeNft(tableJson(tableSpec(desired())));
      let refuse = false;
      const reconciler = new NftablesReconciler({
        run: (file, args, input) =>
          refuse && args[0] === '-f' && input?.startsWith('add element') === true
            ? Promise.reject(new CommandError('nft -f - failed', file, args, 'Error: No such file\n', false))
            : fake.run(file, args, input),
      });
      const repaired = (reports: readonly { repaired?: boolean }[]) =>
        reports.map((r) => r.repaired === true);
      await reconciler.reconcile(desired());
      // A container's change alone, trusted or read and compared: not a repair.
      expect(repaired(await reconciler.reconcile(desired([WEB, NEW]), { trustLastSync: true }))).toEqual([
        false,
        false,
      ]);
      fake.listing = tableJson(tableSpec(desired([WEB, NEW])));
      expect(repaired(await reconciler.reconcile(desired()))).toEqual([false, false]);
      fake.listing = tableJson(tableSpec(desired()));
      // The same change, with the web container's guard element deleted behind dockfw's back.
      fake.listing = tableJson(tableSpec(desired()), (items) =>
        items.map(
          (item) => JSON.parse(JSON.stringify(item).replace('"172.17.0.2"', '"172.17.0.9"')) as unknown,
        ),
      );
      const reports = await reconciler.reconcile(desired([WEB, NEW]));
      expect(reports.map((r) => r.desiredChanged)).toEqual([true, false]);
      expect(repaired(reports)).toEqual([true, true]);
      // A trusted write the kernel refused (its set was gone): written whole, a repair.
      fake.listing = tableJson(tableSpec(desired([WEB, NEW])));
      await reconciler.reconcile(desired([WEB, NEW]));
      refuse = true;
      const third = {
        ...NEW,
        id: 'c'.repeat(64),
        name: 'third',
        networks: [{ network: 'bridge', ipv4: '172.17.0.4' }],
      };
      expect(
        repaired(await reconciler.reconcile(desired([WEB, NEW, third]), { trustLastSync: true })),
      ).toEqual([true, true]);
    });

    it('reads and compares when the shape of the table changes (a whole-table write is due)', async () => {
      const fake = fakeNft(tableJson(tableSpec(desired())));
      const { run, reads } = counting(fake);
      const reconciler = new NftablesReconciler({ run });
      await reconciler.reconcile(desired());
      const before = reads();
      const outside = desired([WEB], { DOCKFW_EXTERNAL_INTERFACES: 'eth0' });
      await reconciler.reconcile(outside, { trustLastSync: true });
      expect(reads()).toBeGreaterThan(before);
      expect(fake.payloads).toEqual([renderTablePayload(tableSpec(outside))]);
    });
  });

  describe('the periodic check (light: chains and interface sets, while the watch follows)', () => {
    const watched = { periodic: { watched: true } } as const;
    const NEW = secondWeb(WEB);

    async function synced() {
      const kernel = new FakeNftKernel();
      const lists: string[] = [];
      const reconciler = new NftablesReconciler({
        run: (file, args, input) => {
          if (args[0] !== '-f') lists.push(args.filter((a) => a !== '-j').join(' '));
          return kernel.run(file, args, input);
        },
      });
      await reconciler.reconcile(desired());
      lists.splice(0);
      return { kernel, reconciler, lists };
    }

    it('lists no rules and no verdict elements, writes nothing when in step', async () => {
      const { kernel, reconciler, lists } = await synced();
      const writes = kernel.writes.length;
      const reports = await reconciler.reconcile(desired(), watched);
      expect(reports.map((r) => r.written)).toEqual([false, false]);
      expect(lists).toEqual([
        'list chains inet',
        'list set inet dockfw bridges',
        'list set inet dockfw dnatbridges',
      ]);
      expect(kernel.writes).toHaveLength(writes);
    });

    it('writes what the containers changed since as elements', async () => {
      const { kernel, reconciler, lists } = await synced();
      await reconciler.reconcile(desired([WEB, NEW]), watched);
      expect(lists).not.toContain('list table inet dockfw');
      expect(kernel.elements('guarded4')).toEqual(['172.17.0.2 . tcp . 80', '172.17.0.3 . tcp . 80']);
    });

    it('reads the whole table and repairs it when the table or a chain is gone', async () => {
      const { kernel, reconciler } = await synced();
      kernel.outside('delete table inet dockfw\n');
      const [v4] = await reconciler.reconcile(desired(), watched);
      expect(v4).toMatchObject({ written: true, desiredChanged: false });
      expect(kernel.elements('guarded4')).toEqual(['172.17.0.2 . tcp . 80']);
    });

    it('reads the whole table when an interface set differs', async () => {
      const { kernel, reconciler, lists } = await synced();
      kernel.outside('flush set inet dockfw dnatbridges\n');
      const [v4] = await reconciler.reconcile(desired(), watched);
      expect(v4?.written).toBe(true);
      expect(lists).toContain('-t list table inet dockfw');
      expect(kernel.elements('dnatbridges')?.length).toBeGreaterThan(0);
    });

    it('reads every element while the watch does not follow the kernel', async () => {
      const { kernel, reconciler, lists } = await synced();
      kernel.outside('flush set inet dockfw guarded4\n');
      const [v4] = await reconciler.reconcile(desired(), { periodic: { watched: false } });
      expect(lists).toContain('-t list table inet dockfw');
      expect(v4?.written).toBe(true);
      expect(kernel.elements('guarded4')).toEqual(['172.17.0.2 . tcp . 80']);
    });
  });

  it('says clearly when nft is missing, and where nft rejected a payload', async () => {
    await expect(
      new NftablesReconciler({ run: fakeNft(undefined, { missing: true }).run }).reconcile(desired()),
    ).rejects.toThrow(/not found/);
    const stderr = '/dev/stdin:5:1-3: Error: syntax error\n';
    const reject = new CommandError('nft -f - failed', 'nft', ['-f', '-'], stderr, false);
    expect(failedLineNumber(stderr)).toBe(5);
    await expect(
      new NftablesReconciler({ run: fakeNft(undefined, { reject }).run }).reconcile(desired()),
    ).rejects.toThrow(/nft rejected the rules: .*syntax error at line 5: type ifname$/);
  });
});

describe('uninstallNftables', () => {
  it('deletes the table when there is one, and says when there was none', async () => {
    const present = fakeNft(tableJson(tableSpec(desired())));
    expect(await uninstallNftables(present.run)).toEqual({ removed: true, table: 'inet dockfw' });
    expect(present.payloads).toEqual(['add table inet dockfw\ndelete table inet dockfw\n']);
    const absent = fakeNft(undefined);
    expect(await uninstallNftables(absent.run)).toEqual({ removed: false, table: 'inet dockfw' });
    expect(absent.payloads).toEqual([]);
  });
});
