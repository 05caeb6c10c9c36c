import { describe, expect, it } from 'vitest';
import { defaultConfig, loadConfig } from '../../config/config.js';
import type { ContainerSnapshot } from '../../docker/snapshot.js';
import { desiredState, type DesiredState } from '../../policy/desired.js';
import { CommandError, type CommandRunner } from '../command.js';
import { JUMP_WRONG } from '../firewall.js';
import { diffOwned, hasDrift } from './drift.js';
import { FakeIpset } from './fake-ipset.js';
import { fakeIptables, saveText, type FakeIptables } from './fake-iptables.js';
import { familySets, renderSetsFull } from './sets.js';
import { parseFilterTable } from './read.js';
import { DockerChainsMissingError, IptablesReconciler } from './reconcile.js';
import { renderPreroutingPayload, renderSyncPayload } from './render.js';
import { FakeIptablesKernel } from './fake-iptables-kernel.js';
import { secondWeb, webContainer } from '../../../test/support/states.js';

const WEB = webContainer('203.0.113.10, 198.51.100.0/24', {
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
});

const NEW = secondWeb(WEB);

function desired(containers: ContainerSnapshot[] = [WEB]): DesiredState {
  return desiredState({ containers, bridges: ['docker0'] }, defaultConfig());
}

/** What iptables-save prints once both tables' payloads are applied and the jumps are first. */
function installed(state: DesiredState, family: 4 | 6, parentRules: string[] = ['-j DOCKFW']): string {
  // The fake ipset makes the drop record sets, so DOCKFW-DROP records.
  const records = { records: true };
  const owned = parseFilterTable(
    renderSyncPayload(state, family, { parent: 'DOCKER-USER', positions: [] }, records),
  );
  const pre = parseFilterTable(
    renderPreroutingPayload(state, family, { parent: 'PREROUTING', positions: [] }, records),
    'mangle',
  );
  // iptables-save prints quoted comments exactly as render writes them.
  return (
    saveText(
      {
        PREROUTING: ['-j DOCKFW-PRE'],
        'DOCKFW-PRE': pre.chains.get('DOCKFW-PRE') ?? [],
        'DOCKFW-PUBLISHED': pre.chains.get('DOCKFW-PUBLISHED') ?? [],
        'DOCKFW-DROP': pre.chains.get('DOCKFW-DROP') ?? [],
      },
      'mangle',
    ) +
    saveText({
      FORWARD: ['-j DOCKER-USER'],
      'DOCKER-USER': parentRules,
      DOCKFW: owned.chains.get('DOCKFW') ?? [],
      'DOCKFW-IN': owned.chains.get('DOCKFW-IN') ?? [],
      'DOCKFW-DROP': owned.chains.get('DOCKFW-DROP') ?? [],
    })
  );
}

const noLegacy = () => Promise.resolve('');

/** dockfw's sets of `family` as a sync of `state` leaves them. */
async function fillSets(ipset: FakeIpset | null, state: DesiredState, family: 4 | 6): Promise<void> {
  const present = new Set(ipset?.names() ?? []);
  await ipset?.run(
    'ipset',
    ['restore'],
    renderSetsFull(family, familySets(state, family), present, new Set()),
  );
}

async function filled(fake: FakeIptables, state: DesiredState, families: readonly (4 | 6)[] = [4, 6]) {
  for (const family of families) await fillSets(fake.ipset, state, family);
  fake.ipset?.batches.splice(0);
  fake.ipset?.writes.splice(0);
  return fake;
}

describe('IptablesReconciler', () => {
  it('writes nothing when the kernel already matches the render', async () => {
    const state = desired();
    const fake = await filled(
      fakeIptables({
        'iptables-nft-save': installed(state, 4),
        'ip6tables-nft-save': installed(state, 6),
      }),
      state,
    );
    const reports = await new IptablesReconciler({ run: fake.run, legacyTableNames: noLegacy }).reconcile(
      state,
    );
    expect(reports.map((r) => r.written)).toEqual([false, false]);
    expect(fake.restores).toEqual([]);
    expect(fake.ipset?.batches).toEqual([]);
    // Only the drop records' idempotent `create -exist` (as before this layout).
    expect(fake.ipset?.writes.filter((w) => !w.includes('dockfw-drops'))).toEqual([]);
  });

  it('tells a write the desired state asked for from one that repairs drift', async () => {
    const state = desired();
    const v4 = { text: installed(state, 4) };
    const fake = await filled(
      fakeIptables({ 'iptables-nft-save': '', 'ip6tables-nft-save': installed(state, 6) }),
      state,
    );
    const reconciler = new IptablesReconciler({
      run: (file, args, input) =>
        file === 'iptables-nft-save' ? Promise.resolve({ stdout: v4.text }) : fake.run(file, args, input),
      legacyTableNames: noLegacy,
    });
    expect((await reconciler.reconcile(state))[0]).toMatchObject({ written: false, desiredChanged: true });
    expect((await reconciler.reconcile(state))[0]).toMatchObject({ written: false, desiredChanged: false });
    v4.text = v4.text.replace(/-A DOCKFW-IN .*catch-all.*\n/g, '');
    expect((await reconciler.reconcile(state))[0]).toMatchObject({ written: true, desiredChanged: false });
    const changed = desired([{ ...WEB, labels: {} }]);
    expect((await reconciler.reconcile(changed))[0]).toMatchObject({ written: true, desiredChanged: true });
  });

  it('writes one transaction per family that differs, and says what was missing', async () => {
    const before = desired([{ ...WEB, labels: {} }]);
    const after = desired();
    const fake = fakeIptables({
      'iptables-nft-save': installed(before, 4),
      'ip6tables-nft-save': installed(after, 6),
    });
    await fillSets(fake.ipset, before, 4);
    await fillSets(fake.ipset, after, 6);
    fake.ipset?.batches.splice(0);
    const reports = await new IptablesReconciler({ run: fake.run, legacyTableNames: noLegacy }).reconcile(
      after,
    );
    // The chains do not change with the labels: only IPv4's set elements, in one batch.
    expect(fake.restores).toEqual([]);
    expect(fake.ipset?.batches).toHaveLength(1);
    expect(fake.ipset?.batches[0]).not.toMatch(/dockfw-[a-z]+6/);
    expect(fake.ipset?.elements('dockfw-allowed4')).toEqual(
      [...(familySets(after, 4).get('allowed') ?? [])].sort(),
    );
    const v4 = reports[0];
    expect(v4?.written).toBe(true);
    expect(reports[1]?.written).toBe(false);
    expect(v4?.drift.missing).toContain('dockfw-allowed4 172.17.0.2,tcp:80,203.0.113.10');
    expect(v4?.drift.missing).toContain('dockfw-guarded4 172.17.0.2,tcp:80');
    expect(v4?.drift.missing).toContain('dockfw-boundany4 203.0.113.10,tcp:8080');
    expect(v4?.drift.unexpected).toEqual([
      'dockfw-allowed4 172.17.0.2,tcp:80,0.0.0.0/1',
      'dockfw-allowed4 172.17.0.2,tcp:80,128.0.0.0/1',
    ]);
  });

  it('repairs a jump that is not first, or doubled, and leaves other rules to the payload’s -D by text', async () => {
    const state = desired();
    const fake = fakeIptables({
      'iptables-nft-save': installed(state, 4, ['-s 198.51.100.7/32 -j DROP', '-j DOCKFW', '-j DOCKFW']),
      'ip6tables-nft-save': installed(state, 6),
    });
    const [v4] = await new IptablesReconciler({ run: fake.run, legacyTableNames: noLegacy }).reconcile(state);
    expect(v4?.drift.structural.includes(JUMP_WRONG)).toBe(true);
    expect(fake.restores[0]?.payload).toContain(
      '-D DOCKER-USER -j DOCKFW\n-D DOCKER-USER -j DOCKFW\n-I DOCKER-USER 1 -j DOCKFW\n',
    );
  });

  it('waits for Docker’s chains', async () => {
    const fake = fakeIptables({ 'iptables-nft-save': saveText({ FORWARD: [] }) });
    await expect(
      new IptablesReconciler({ run: fake.run, legacyTableNames: noLegacy }).reconcile(desired()),
    ).rejects.toBeInstanceOf(DockerChainsMissingError);
  });

  it('manages IPv4 alone when ip6tables is not installed, and says so once', async () => {
    const state = desired();
    const fake = fakeIptables({ 'iptables-nft-save': installed(state, 4) });
    const told: CommandError[] = [];
    const reconciler = new IptablesReconciler({
      run: fake.run,
      legacyTableNames: noLegacy,
      onIpv6Unavailable: (e) => told.push(e),
    });
    expect((await reconciler.reconcile(state)).map((r) => r.family)).toEqual([4]);
    expect((await reconciler.reconcile(state)).map((r) => r.family)).toEqual([4]);
    expect(told).toHaveLength(1);
  });
});

describe('leftovers in the other variant', () => {
  it('are removed once Docker’s chains are found in the other variant, and only dockfw’s', async () => {
    const state = desired();
    const stale = saveText({
      FORWARD: ['-j DOCKER-USER'],
      'DOCKER-USER': ['-j DOCKFW', '-s 198.51.100.7/32 -j DROP'],
      DOCKFW: ['-j DOCKFW-IN'],
      'DOCKFW-IN': ['-o docker0 -m conntrack --ctstate DNAT -j DROP'],
    });
    const fake = fakeIptables({
      'iptables-nft-save': installed(state, 4).replace(
        ':DOCKFW ',
        ':DOCKER - [0:0]\n-A DOCKER -j ACCEPT\n:DOCKFW ',
      ),
      'ip6tables-nft-save': installed(state, 6),
      'iptables-legacy-save': stale,
      'ip6tables-legacy-save': saveText({ FORWARD: [] }),
    });
    await filled(fake, state);
    const reconciler = new IptablesReconciler({
      run: fake.run,
      legacyTableNames: () => Promise.resolve('filter\n'),
    });
    const reports = await reconciler.reconcile(state);
    expect(
      reports.map((r) => [r.family, (r.placement as { variant?: string }).variant, r.written, r.removedFrom]),
    ).toEqual([
      [4, 'nft', false, 'legacy'],
      [6, 'nft', false, undefined],
    ]);
    expect(fake.restores).toEqual([
      {
        file: 'iptables-legacy-restore',
        payload:
          '*filter\n-D DOCKER-USER -j DOCKFW\n:DOCKFW - [0:0]\n:DOCKFW-IN - [0:0]\n-X DOCKFW\n-X DOCKFW-IN\nCOMMIT\n',
      },
    ]);
  });
});

describe('diffOwned', () => {
  const state = desired();
  const payload = renderSyncPayload(state, 4, { parent: 'DOCKER-USER', positions: [1] }, { records: true });

  it('finds no drift in the installed render', () => {
    expect(hasDrift(diffOwned(parseFilterTable(installed(state, 4)), payload, [1]))).toBe(false);
  });

  it('notices owned chains that are gone, e.g. after someone flushed and deleted them', () => {
    const drift = diffOwned(parseFilterTable(saveText({ 'DOCKER-USER': [] })), payload, []);
    expect(drift.chainsMissing).toEqual(['DOCKFW', 'DOCKFW-IN', 'DOCKFW-DROP']);
    expect(drift.jumpWrong).toBe(true);
    expect(drift.missing.length).toBeGreaterThan(3);
  });

  it('notices rules in another order', () => {
    const owned = parseFilterTable(payload);
    const rules = [...(owned.chains.get('DOCKFW-IN') ?? [])].reverse();
    const table = parseFilterTable(
      saveText({
        DOCKFW: owned.chains.get('DOCKFW') ?? [],
        'DOCKFW-IN': rules,
        'DOCKFW-DROP': owned.chains.get('DOCKFW-DROP') ?? [],
      }),
    );
    const drift = diffOwned(table, payload, [1]);
    expect(drift).toMatchObject({ missing: [], unexpected: [], reordered: true });
  });
});

describe('when Docker’s chains vanish (nft flush ruleset)', () => {
  it('puts the bindings back in mangle, in the variant they were in, and still waits for Docker', async () => {
    const kernel = new FakeIptablesKernel('nft');
    const reconciler = new IptablesReconciler({
      run: kernel.run,
      legacyTableNames: noLegacy,
      dropRecords: 0,
    });
    await reconciler.reconcile(desired());
    const published = (): readonly string[] | undefined => kernel.chain(4, 'DOCKFW-PUBLISHED', 'mangle');
    const judged = (): boolean =>
      (published()?.some((r) => r.includes('--match-set dockfw-boundany4 src,dst -j RETURN')) ?? false) &&
      (kernel.ipset.elements('dockfw-boundany4')?.includes('203.0.113.10,tcp:8080') ?? false);
    expect(judged()).toBe(true);
    // Everything flushed: Docker's chains, its DNAT, and dockfw's rules in both tables.
    for (const family of [4, 6] as const) {
      kernel.edit(family, (t) => {
        t.clear();
        for (const chain of ['INPUT', 'FORWARD', 'OUTPUT']) t.set(chain, []);
      });
      kernel.edit(
        family,
        (t) => {
          t.clear();
          for (const chain of ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']) t.set(chain, []);
        },
        'mangle',
      );
    }
    await expect(reconciler.reconcile(desired())).rejects.toBeInstanceOf(DockerChainsMissingError);
    expect(kernel.chain(4, 'PREROUTING', 'mangle')).toEqual(['-j DOCKFW-PRE']);
    expect(judged()).toBe(true);
    expect(kernel.chain(6, 'PREROUTING', 'mangle')).toEqual(['-j DOCKFW-PRE']);
    // Nothing in filter until Docker is back (its chains decide where the jump goes).
    expect(kernel.chain(4, 'DOCKFW')).toBeUndefined();
  });
});

describe('drift in the sets', () => {
  async function synced() {
    const kernel = new FakeIptablesKernel('nft');
    const writes: string[] = [];
    const reconciler = new IptablesReconciler({
      run: kernel.run,
      legacyTableNames: noLegacy,
      onSetWrite: (kind, family) => writes.push(`${kind} ${family}`),
    });
    await reconciler.reconcile(desired());
    writes.splice(0);
    return { kernel, reconciler, writes };
  }

  it('a check that finds nothing reads only and writes nothing', async () => {
    const { kernel, reconciler, writes } = await synced();
    const restores = kernel.restores.length;
    const batches = kernel.ipset.batches.length;
    const reports = await reconciler.reconcile(desired());
    expect(reports.map((r) => r.written)).toEqual([false, false]);
    expect(kernel.restores).toHaveLength(restores);
    expect(kernel.ipset.batches).toHaveLength(batches);
    expect(writes).toEqual([]);
  });

  it('removes an element someone else added to an allow set (it opens), and only it', async () => {
    const { kernel, reconciler, writes } = await synced();
    kernel.ipset.tamper(['add', 'dockfw-allowed4', '172.17.0.2,tcp:80,192.0.2.0/24']);
    kernel.ipset.tamper(['add', 'dockfw-boundany4', '192.0.2.0/24,tcp:8080']);
    const [v4] = await reconciler.reconcile(desired());
    expect(v4).toMatchObject({ written: true, desiredChanged: false });
    expect(v4?.drift.unexpected).toEqual([
      'dockfw-boundany4 192.0.2.0/24,tcp:8080',
      'dockfw-allowed4 172.17.0.2,tcp:80,192.0.2.0/24',
    ]);
    expect(writes).toEqual(['elements 4']);
    expect(kernel.ipset.batches.at(-1)).toBe(
      'del -exist dockfw-boundany4 192.0.2.0/24,tcp:8080\ndel -exist dockfw-allowed4 172.17.0.2,tcp:80,192.0.2.0/24\n',
    );
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(
      [...(familySets(desired(), 4).get('allowed') ?? [])].sort(),
    );
  });

  it("says a write also repaired someone else's change when it carries more than the containers' change; not for the change alone", async () => {
    const { kernel, reconciler } = await synced();
    const repaired = (reports: readonly { repaired?: boolean }[]) => reports.map((r) => r.repaired === true);
    expect(repaired(await reconciler.reconcile(desired([WEB, NEW])))).toEqual([false, false]);
    // A guard element taken away (that target opened), repaired by a write that also carries a container's removal.
    const [guard] = [...(familySets(desired(), 4).get('guarded') ?? [])];
    kernel.ipset.tamper(['del', 'dockfw-guarded4', guard ?? '']);
    const reports = await reconciler.reconcile(desired());
    expect(reports.map((r) => r.desiredChanged)).toEqual([true, true]);
    expect(repaired(reports)).toEqual([true, false]);
    // DOCKFW-IN flushed, with a container's change in the same write.
    await kernel.run('iptables-nft-restore', ['--noflush'], '*filter\n:DOCKFW-IN - [0:0]\nCOMMIT\n');
    expect(repaired(await reconciler.reconcile(desired([WEB, NEW])))).toEqual([true, false]);
  });

  it('fills a flushed allow set again (a flush only closed)', async () => {
    const { kernel, reconciler, writes } = await synced();
    kernel.ipset.tamper(['flush', 'dockfw-allowed4']);
    const reports = await reconciler.reconcile(desired());
    expect(reports.map((r) => r.written)).toEqual([true, false]);
    expect(reports[0]?.drift.missing).toContain('dockfw-allowed4 172.17.0.2,tcp:80,203.0.113.10');
    expect(writes).toEqual(['elements 4']);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(
      [...(familySets(desired(), 4).get('allowed') ?? [])].sort(),
    );
  });

  it('makes a destroyed set again (swapped in whole) and puts back the chains that referenced it', async () => {
    const { kernel, reconciler, writes } = await synced();
    // A set a rule references cannot be destroyed: someone flushed the chain first.
    expect(() => kernel.ipset.tamper(['destroy', 'dockfw-guarded4'])).toThrow(/in use/);
    kernel.edit(4, (t) => t.set('DOCKFW-IN', []));
    kernel.ipset.tamper(['destroy', 'dockfw-guarded4']);
    const [v4] = await reconciler.reconcile(desired());
    expect(v4?.written).toBe(true);
    expect(v4?.drift.structural).toEqual(['set dockfw-guarded4 missing']);
    expect(writes).toEqual(['swap 4']);
    expect(kernel.ipset.elements('dockfw-guarded4')).toEqual(['172.17.0.2,tcp:80']);
    expect(kernel.chain(4, 'DOCKFW-IN')).toContain(
      '-m set --match-set dockfw-guarded4 dst,dst -j DOCKFW-DROP',
    );
    // No temporaries left behind.
    expect(kernel.ipset.names().filter((n) => n.endsWith('-t'))).toEqual([]);
    expect((await reconciler.reconcile(desired())).map((r) => r.written)).toEqual([false, false]);
  });

  it('puts back in the same sync a chain flushed after it was read, its set destroyed before the sets were read', async () => {
    const { kernel, reconciler } = await synced();
    let damaged = false;
    const run: CommandRunner = (file, args, input) => {
      // The damage lands between this sync's read of the filter table (detect) and its read of the
      // sets: at its first ipset call (the drop record set's, made before the family is reconciled).
      if (!damaged && file === 'ipset') {
        damaged = true;
        kernel.edit(4, (t) => t.set('DOCKFW-IN', []));
        kernel.ipset.tamper(['destroy', 'dockfw-guarded4']);
      }
      return kernel.run(file, args, input);
    };
    const racing = new IptablesReconciler({ run, legacyTableNames: noLegacy });
    await racing.reconcile(desired());
    expect(damaged).toBe(true);
    expect(kernel.ipset.elements('dockfw-guarded4')).toEqual(['172.17.0.2,tcp:80']);
    expect(kernel.chain(4, 'DOCKFW-IN')).toContain(
      '-m set --match-set dockfw-guarded4 dst,dst -j DOCKFW-DROP',
    );
    // Nothing left for the next sync to find.
    expect((await reconciler.reconcile(desired())).map((r) => r.written)).toEqual([false, false]);
  });

  it('falls back to the whole family when the element batch fails (a set changed under it)', async () => {
    const { kernel, writes } = await synced();
    const changed = desired([{ ...WEB, labels: { 'dockfw.allow': '198.51.100.7' } }]);
    let failOnce = true;
    const reconciler = new IptablesReconciler({
      run: (file, args, input) => {
        if (file === 'ipset' && args[0] === 'restore' && failOnce && !(input ?? '').includes('swap')) {
          failOnce = false;
          return Promise.reject(
            new CommandError('ipset restore failed', file, args, 'Error in line 1', false),
          );
        }
        return kernel.run(file, args, input);
      },
      legacyTableNames: noLegacy,
      onSetWrite: (kind, family) => writes.push(`${kind} ${family}`),
    });
    await reconciler.reconcile(changed);
    // IPv6's sets do not change (the label lists IPv4 sources only).
    expect(writes).toEqual(['swap 4']);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(
      [...(familySets(changed, 4).get('allowed') ?? [])].sort(),
    );
  });

  it('adds the established fast path at the top of both judging chains only when asked', async () => {
    const kernel = new FakeIptablesKernel('nft');
    await new IptablesReconciler({ run: kernel.run, legacyTableNames: noLegacy, fastPath: true }).reconcile(
      desired(),
    );
    const fast = '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN';
    expect(kernel.chain(4, 'DOCKFW-IN')?.slice(0, 2)).toEqual(['-m conntrack --ctdir REPLY -j RETURN', fast]);
    expect(kernel.chain(6, 'DOCKFW-PUBLISHED', 'mangle')?.[1]).toBe(fast);
    const plain = new FakeIptablesKernel('nft');
    await new IptablesReconciler({ run: plain.run, legacyTableNames: noLegacy }).reconcile(desired());
    expect(plain.chain(4, 'DOCKFW-IN')).not.toContain(fast);
  });
});

describe('after container events alone (trustLastSync)', () => {
  async function synced() {
    const kernel = new FakeIptablesKernel('nft');
    let reads = 0;
    const writes: string[] = [];
    const reconciler = new IptablesReconciler({
      run: (file, args, input) => {
        if (input === undefined) reads++;
        return kernel.run(file, args, input);
      },
      legacyTableNames: noLegacy,
      onSetWrite: (kind, family) => writes.push(`${kind} ${family}`),
    });
    await reconciler.reconcile(desired());
    writes.splice(0);
    return { kernel, reconciler, writes, reads: () => reads };
  }

  const sorted = (
    state: DesiredState,
    role: 'allowed' | 'guarded' | 'boundany' | 'bound',
    family: 4 | 6 = 4,
  ) => [...(familySets(state, family).get(role) ?? [])].sort();

  it('writes the element difference from what the last sync left, reading nothing', async () => {
    const { kernel, reconciler, writes, reads } = await synced();
    const before = reads();
    const restores = kernel.restores.length;
    const batches = kernel.ipset.batches.length;
    const reports = await reconciler.reconcile(desired([WEB, NEW]), { trustLastSync: true });
    expect(reads()).toBe(before);
    expect(kernel.restores).toHaveLength(restores);
    expect(writes).toEqual(['elements 4', 'elements 6']);
    // Both families' elements in one tool process.
    expect(kernel.ipset.batches).toHaveLength(batches + 1);
    expect(reports.map((r) => [r.written, r.desiredChanged])).toEqual([
      [true, true],
      [true, true],
    ]);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(sorted(desired([WEB, NEW]), 'allowed'));
    expect(kernel.ipset.elements('dockfw-boundany4')).toEqual(sorted(desired([WEB, NEW]), 'boundany'));
    // And back, still without a read; the kernel is then what a full sync leaves.
    await reconciler.reconcile(desired(), { trustLastSync: true });
    expect(reads()).toBe(before);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(sorted(desired(), 'allowed'));
    expect(kernel.ipset.elements('dockfw-guarded4')).toEqual(sorted(desired(), 'guarded'));
    const check = await reconciler.reconcile(desired());
    expect(check.map((r) => [r.written, r.desiredChanged])).toEqual([
      [false, false],
      [false, false],
    ]);
  });

  it('writes nothing and reads nothing when the events changed nothing', async () => {
    const { kernel, reconciler, writes, reads } = await synced();
    const before = reads();
    const batches = kernel.ipset.batches.length;
    const reports = await reconciler.reconcile(desired(), { trustLastSync: true });
    expect(reads()).toBe(before);
    expect(kernel.ipset.batches).toHaveLength(batches);
    expect(writes).toEqual([]);
    expect(reports.map((r) => r.written)).toEqual([false, false]);
  });

  it('reads first when nothing is known yet and whenever the sync is not trusted', async () => {
    const kernel = new FakeIptablesKernel('nft');
    let reads = 0;
    const reconciler = new IptablesReconciler({
      run: (file, args, input) => {
        if (input === undefined) reads++;
        return kernel.run(file, args, input);
      },
      legacyTableNames: noLegacy,
    });
    await reconciler.reconcile(desired(), { trustLastSync: true });
    expect(reads).toBeGreaterThan(0);
    // Someone flushed an allow set: only an untrusted sync can see it, and it does.
    kernel.ipset.tamper(['flush', 'dockfw-allowed4']);
    const after = reads;
    const [v4] = await reconciler.reconcile(desired());
    expect(reads).toBeGreaterThan(after);
    expect(v4).toMatchObject({ written: true, desiredChanged: false });
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(sorted(desired(), 'allowed'));
  });

  it('reads and writes the family whole when the delta fails (a set changed behind dockfw)', async () => {
    const { kernel, reconciler, writes } = await synced();
    // The chains flushed and a set destroyed: only the trusted batch notices, by failing.
    kernel.edit(4, (t) => t.set('DOCKFW-IN', []));
    kernel.ipset.tamper(['destroy', 'dockfw-guarded4']);
    const reports = await reconciler.reconcile(desired([WEB, NEW]), { trustLastSync: true });
    expect(writes).toContain('swap 4');
    expect(reports[0]?.drift.structural).toContain('set dockfw-guarded4 missing');
    expect(kernel.ipset.elements('dockfw-guarded4')).toEqual(sorted(desired([WEB, NEW]), 'guarded'));
    expect(kernel.chain(4, 'DOCKFW-IN')).toContain(
      '-m set --match-set dockfw-guarded4 dst,dst -j DOCKFW-DROP',
    );
  });

  it('reads and writes both families when the one batch fails in an IPv6 line; the rest of IPv4’s change is not a repair', async () => {
    const { kernel, reconciler, writes } = await synced();
    // The IPv6 lines of this change add to dockfw-bound6 (NEW has no IPv6 address, only its host port).
    kernel.edit(6, (t) => t.set('DOCKFW-PUBLISHED', []), 'mangle');
    kernel.ipset.tamper(['destroy', 'dockfw-bound6']);
    const reports = await reconciler.reconcile(desired([WEB, NEW]), { trustLastSync: true });
    expect(writes).toContain('swap 6');
    expect(reports[1]?.drift.structural).toContain('set dockfw-bound6 missing');
    expect(reports[1]?.repaired).toBe(true);
    // IPv4's admitting lines came after the failing line: written now, and they are the
    // containers' own change, not a repair of someone else's.
    expect(reports[0]?.repaired).toBeUndefined();
    expect(reports[0]).toMatchObject({ written: true, desiredChanged: true });
    for (const family of [4, 6] as const)
      for (const role of ['allowed', 'guarded', 'boundany', 'bound'] as const)
        expect(kernel.ipset.elements(`dockfw-${role}${family}`)).toEqual(
          sorted(desired([WEB, NEW]), role, family),
        );
    expect(kernel.chain(6, 'DOCKFW-PUBLISHED', 'mangle')).toContain(
      '-m set --match-set dockfw-bound6 dst,dst -j DOCKFW-DROP',
    );
  });

  it('reads and compares when the chains would change (a configuration change)', async () => {
    const { kernel, reconciler, reads } = await synced();
    const before = reads();
    const outside = desiredState(
      { containers: [WEB], bridges: ['docker0'] },
      loadConfig({ DOCKFW_EXTERNAL_INTERFACES: 'eth0' }),
    );
    await reconciler.reconcile(outside, { trustLastSync: true });
    expect(reads()).toBeGreaterThan(before);
    expect(kernel.chain(4, 'DOCKFW')?.some((r) => r.includes('-i eth0'))).toBe(true);
  });
});

describe('after container events alone, with sets past the smallest size', () => {
  it('stays trusted while each set is within its own maxelem', async () => {
    const ports = Array.from({ length: 34_000 }, (_, i) => ({
      containerPort: i + 1,
      protocol: 'tcp' as const,
      hostIp: '127.0.0.1',
      hostPort: i + 1,
    }));
    const big: ContainerSnapshot = {
      ...WEB,
      labels: { 'dockfw.allow': '203.0.113.10' },
      networks: [
        { network: 'bridge', ipv4: '172.17.0.2' },
        { network: 'other', ipv4: '172.18.0.2' },
      ],
      ports,
    };
    const kernel = new FakeIptablesKernel('nft');
    let reads = 0;
    const reconciler = new IptablesReconciler({
      run: (file, args, input) => {
        if (input === undefined) reads++;
        return kernel.run(file, args, input);
      },
      legacyTableNames: noLegacy,
    });
    const first = desired([big]);
    expect(familySets(first, 4).get('guarded')?.size).toBe(68_000);
    await reconciler.reconcile(first);
    const before = reads;
    const more = desired([
      big,
      {
        ...WEB,
        id: 'c'.repeat(64),
        name: 'more',
        networks: [{ network: 'bridge', ipv4: '172.17.0.9' }],
        ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 40_000 }],
      },
    ]);
    await reconciler.reconcile(more, { trustLastSync: true });
    expect(reads).toBe(before);
    expect(kernel.ipset.elements('dockfw-guarded4')).toContain('172.17.0.9,tcp:80');
  }, 30_000);
});

describe('the periodic check (light: set headers, not elements)', () => {
  const periodic = { periodic: { watched: false } } as const;
  async function synced() {
    const kernel = new FakeIptablesKernel('nft');
    const commands: string[] = [];
    const reconciler = new IptablesReconciler({
      run: (file, args, input) => {
        if (file === 'ipset') commands.push(args.join(' '));
        return kernel.run(file, args, input);
      },
      legacyTableNames: noLegacy,
    });
    await reconciler.reconcile(desired());
    commands.splice(0);
    return { kernel, reconciler, commands };
  }
  const saves = (commands: string[]) => commands.filter((c) => c.startsWith('save'));
  const allowed4 = (state: DesiredState) => [...(familySets(state, 4).get('allowed') ?? [])].sort();

  it('reads the headers (once for both families), not the elements, and writes nothing when they agree', async () => {
    const { kernel, reconciler, commands } = await synced();
    const batches = kernel.ipset.batches.length;
    const reports = await reconciler.reconcile(desired(), periodic);
    expect(reports.map((r) => r.written)).toEqual([false, false]);
    expect(commands.filter((c) => c === 'list -t')).toHaveLength(1);
    expect(saves(commands)).toEqual([]);
    expect(kernel.ipset.batches).toHaveLength(batches);
  });

  it('writes what the containers changed since (a lost event) as a difference', async () => {
    const { kernel, reconciler, commands } = await synced();
    const reports = await reconciler.reconcile(desired([WEB, NEW]), periodic);
    expect(reports.map((r) => [r.written, r.desiredChanged])).toEqual([
      [true, true],
      [true, true],
    ]);
    expect(saves(commands)).toEqual([]);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(allowed4(desired([WEB, NEW])));
  });

  it('reads every element and repairs when a count differs: a flushed set, a foreign element', async () => {
    const { kernel, reconciler, commands } = await synced();
    kernel.ipset.tamper(['flush', 'dockfw-allowed4']);
    const [flushed] = await reconciler.reconcile(desired(), periodic);
    expect(flushed).toMatchObject({ written: true, desiredChanged: false });
    expect(saves(commands).length).toBeGreaterThan(0);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(allowed4(desired()));
    kernel.ipset.tamper(['add', 'dockfw-allowed4', '172.17.0.2,tcp:80,192.0.2.0/24']);
    const [opened] = await reconciler.reconcile(desired(), periodic);
    expect(opened?.drift.unexpected).toEqual(['dockfw-allowed4 172.17.0.2,tcp:80,192.0.2.0/24']);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(allowed4(desired()));
  });

  it('reads every element when a set is gone (its chain flushed first), and puts both back', async () => {
    const { kernel, reconciler } = await synced();
    kernel.edit(4, (t) => t.set('DOCKFW-IN', []));
    kernel.ipset.tamper(['destroy', 'dockfw-guarded4']);
    const [v4] = await reconciler.reconcile(desired(), periodic);
    expect(v4?.written).toBe(true);
    expect(kernel.ipset.elements('dockfw-guarded4')).toEqual(['172.17.0.2,tcp:80']);
    expect(kernel.chain(4, 'DOCKFW-IN')).toContain(
      '-m set --match-set dockfw-guarded4 dst,dst -j DOCKFW-DROP',
    );
  });

  it('misses an element swapped for another (same count), which the full read then repairs', async () => {
    const { kernel, reconciler } = await synced();
    const [first] = allowed4(desired());
    if (first === undefined) throw new Error('no allow element');
    kernel.ipset.tamper(['del', 'dockfw-allowed4', first]);
    kernel.ipset.tamper(['add', 'dockfw-allowed4', '172.17.0.2,tcp:80,192.0.2.0/24']);
    const [light] = await reconciler.reconcile(desired(), periodic);
    expect(light?.written).toBe(false);
    const [deep] = await reconciler.reconcile(desired());
    expect(deep?.written).toBe(true);
    expect(kernel.ipset.elements('dockfw-allowed4')).toEqual(allowed4(desired()));
  });
});

describe('both families read side by side', () => {
  /** A kernel whose save commands fail: IPv6's at once, IPv4's later (or the other way round). */
  function failing(failFirst: 'ip6tables' | 'iptables', alsoFails: boolean) {
    const kernel = new FakeIptablesKernel('nft');
    return (file: string, args: readonly string[], input?: string) => {
      if (file.endsWith('-save')) {
        const first = file.startsWith(`${failFirst}-`);
        if (first || alsoFails) {
          const error = new CommandError(`${file}: exit 4`, file, args, '', false);
          return new Promise<never>((_, reject) => setTimeout(() => reject(error), first ? 0 : 20));
        }
      }
      return kernel.run(file, args, input);
    };
  }

  async function unheard(run: ReturnType<typeof failing>): Promise<{ error: unknown; unheard: unknown[] }> {
    const unhandled: unknown[] = [];
    const listen = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', listen);
    try {
      const error = await new IptablesReconciler({ run, legacyTableNames: noLegacy })
        .reconcile(desired())
        .catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { error, unheard: unhandled };
    } finally {
      process.off('unhandledRejection', listen);
    }
  }

  it('one failing before the other: the sync fails with IPv4’s error, and no rejection goes unheard', async () => {
    const { error, unheard: left } = await unheard(failing('ip6tables', true));
    expect((error as Error).message).toBe('iptables-nft-save: exit 4');
    expect(left).toEqual([]);
  });

  it('IPv4 failing alone (IPv6 never waits for its variant): the sync fails, no rejection goes unheard', async () => {
    const { error, unheard: left } = await unheard(failing('iptables', false));
    expect((error as Error).message).toBe('iptables-nft-save: exit 4');
    expect(left).toEqual([]);
  });
});
