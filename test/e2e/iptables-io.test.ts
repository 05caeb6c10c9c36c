// The iptables edge of the sidecar (detect, read, apply, drift, uninstall) against
// a real kernel, in both variants, without an engine: Docker's chains are made by
// hand the way each engine generation leaves them. Throwaway network namespaces
// only (needs root).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandError, type CommandRunner } from '../../src/backends/command.js';
import { runCommand } from '../../src/backends/iptables/command.js';
import { JUMP_WRONG, type FamilyReport } from '../../src/backends/firewall.js';
import { IptablesReconciler } from '../../src/backends/iptables/reconcile.js';
import { uninstall } from '../../src/backends/iptables/uninstall.js';
import { loadConfig } from '../../src/config/config.js';
import { parseInspectArray } from '../../src/docker/inspect.js';
import type { Family } from '../../src/docker/snapshot.js';
import { desiredState, type DesiredState } from '../../src/policy/desired.js';

const VARIANTS = ['nft', 'legacy'] as const;
type Variant = (typeof VARIANTS)[number];
const namespaces: string[] = [];

async function newNamespace(): Promise<string> {
  const ns = `dfwio-${randomBytes(3).toString('hex')}`;
  await execa('ip', ['netns', 'add', ns]);
  namespaces.push(ns);
  return ns;
}

afterAll(async () => {
  for (const ns of namespaces) await execa('ip', ['netns', 'del', ns], { reject: false });
});

/** The sidecar's own command runner, moved into the namespace. */
function runIn(ns: string): CommandRunner {
  return (file, args, input) =>
    runCommand('nsenter', [`--net=/var/run/netns/${ns}`, '--', file, ...args], input);
}

/** /proc/net is per namespace: read it from inside. */
function legacyTablesIn(ns: string): (family: Family) => Promise<string> {
  return async (family) => {
    const file = family === 4 ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names';
    const result = await execa('nsenter', [`--net=/var/run/netns/${ns}`, '--', 'cat', file], {
      reject: false,
    });
    return result.stdout;
  };
}

function tool(family: Family, variant: Variant, suffix = ''): string {
  return `${family === 4 ? 'iptables' : 'ip6tables'}-${variant}${suffix}`;
}

async function ipt(ns: string, family: Family, variant: Variant, args: string[]): Promise<void> {
  await runIn(ns)(tool(family, variant), ['-w', ...args]);
}

async function save(ns: string, family: Family, variant: Variant): Promise<string[]> {
  const { stdout } = await runIn(ns)(tool(family, variant, '-save'), ['-t', 'filter']);
  return stdout.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));
}

const chain = (lines: string[], name: string) => lines.filter((l) => l.startsWith(`-A ${name} `));

/**
 * Docker's chains as an engine leaves them: 28.3+ (empty DOCKER-USER, DOCKER-FORWARD)
 * or older (DOCKER-USER ending with RETURN), IPv6 DOCKER-USER or none. Plus the admin's rule.
 */
async function dockerLayout(ns: string, variant: Variant, options: { old: boolean; ipv6UserChain: boolean }) {
  for (const family of [4, 6] as const) {
    if (family === 6 && !options.ipv6UserChain) {
      await ipt(ns, 6, variant, ['-A', 'FORWARD', '-s', '2001:db8:1::13', '-j', 'DROP']);
      continue;
    }
    await ipt(ns, family, variant, ['-N', 'DOCKER-USER']);
    await ipt(ns, family, variant, ['-N', options.old ? 'DOCKER' : 'DOCKER-FORWARD']);
    await ipt(ns, family, variant, ['-A', 'FORWARD', '-j', 'DOCKER-USER']);
    await ipt(ns, family, variant, ['-A', 'FORWARD', '-j', options.old ? 'DOCKER' : 'DOCKER-FORWARD']);
    const blocked = family === 4 ? '203.0.113.13' : '2001:db8:1::13';
    await ipt(ns, family, variant, ['-A', 'DOCKER-USER', '-s', blocked, '-j', 'DROP']);
    if (options.old) await ipt(ns, family, variant, ['-A', 'DOCKER-USER', '-j', 'RETURN']);
  }
}

async function fixtureState(): Promise<DesiredState> {
  const json: unknown = JSON.parse(
    await readFile(new URL('../fixtures/multi-network.json', import.meta.url), 'utf8'),
  );
  return desiredState(
    { containers: parseInspectArray(json), bridges: ['docker0', 'br-0123456789ab'] },
    loadConfig({}),
  );
}

const byFamily = (reports: readonly FamilyReport[]) => Object.fromEntries(reports.map((r) => [r.family, r]));

describe.each(VARIANTS)('iptables-%s on a real kernel', (variant) => {
  it('finds Docker’s variant, writes once, then nothing; repairs flushes, a pushed-down jump and duplicates; keeps others’ rules', async () => {
    const ns = await newNamespace();
    await dockerLayout(ns, variant, { old: true, ipv6UserChain: true });
    const reconciler = new IptablesReconciler({ run: runIn(ns), legacyTableNames: legacyTablesIn(ns) });
    const desired = await fixtureState();

    const first = byFamily(await reconciler.reconcile(desired));
    expect(first[4]).toMatchObject({
      placement: { variant, parent: 'DOCKER-USER' },
      written: true,
      desiredChanged: true,
    });
    expect(first[6]).toMatchObject({
      placement: { variant, parent: 'DOCKER-USER' },
      written: true,
      desiredChanged: true,
    });
    const installed4 = await save(ns, 4, variant);
    expect(chain(installed4, 'DOCKER-USER')).toEqual([
      '-A DOCKER-USER -j DOCKFW',
      '-A DOCKER-USER -s 203.0.113.13/32 -j DROP',
      '-A DOCKER-USER -j RETURN',
    ]);
    expect(chain(installed4, 'DOCKFW-IN').length).toBeGreaterThan(3);

    // Read back, normalised, it is exactly what was rendered: no write.
    const second = await reconciler.reconcile(desired);
    expect(second.map((r) => r.written)).toEqual([false, false]);
    expect(await save(ns, 4, variant)).toEqual(installed4);

    // Someone flushes dockfw's chain: drift, repaired to the same rules.
    await ipt(ns, 4, variant, ['-F', 'DOCKFW-IN']);
    const third = byFamily(await reconciler.reconcile(desired));
    expect(third[4]).toMatchObject({ written: true, desiredChanged: false });
    expect(third[4]?.drift.missing.length).toBe(chain(installed4, 'DOCKFW-IN').length);
    expect(third[6]?.written).toBe(false);
    expect(await save(ns, 4, variant)).toEqual(installed4);

    // An admin inserts above the jump, and a second jump appears further down.
    await ipt(ns, 4, variant, ['-I', 'DOCKER-USER', '1', '-s', '198.51.100.99', '-j', 'DROP']);
    await ipt(ns, 4, variant, ['-A', 'DOCKER-USER', '-j', 'DOCKFW']);
    const fourth = byFamily(await reconciler.reconcile(desired));
    expect(fourth[4]?.drift.structural.includes(JUMP_WRONG)).toBe(true);
    expect(chain(await save(ns, 4, variant), 'DOCKER-USER')).toEqual([
      '-A DOCKER-USER -j DOCKFW',
      '-A DOCKER-USER -s 198.51.100.99/32 -j DROP',
      '-A DOCKER-USER -s 203.0.113.13/32 -j DROP',
      '-A DOCKER-USER -j RETURN',
    ]);
  });

  it('repairs its sets: a foreign element in an allow set (it opens), a flushed set, a destroyed one; writes nothing when in sync', async () => {
    const ns = await newNamespace();
    await dockerLayout(ns, variant, { old: false, ipv6UserChain: true });
    const writes: string[] = [];
    const reconciler = new IptablesReconciler({
      run: runIn(ns),
      legacyTableNames: legacyTablesIn(ns),
      onSetWrite: (kind, family) => writes.push(`${kind} ${family}`),
    });
    const desired = await fixtureState();
    await reconciler.reconcile(desired);
    const ipset = (args: string[]) => runIn(ns)('ipset', args);
    const saved = async (name: string) =>
      (await ipset(['save', name])).stdout
        .split('\n')
        .filter((l) => l.startsWith('add '))
        .sort();
    const allowed4 = await saved('dockfw-allowed4');
    expect(allowed4.length).toBeGreaterThan(0);
    writes.splice(0);

    expect((await reconciler.reconcile(desired)).map((r) => r.written)).toEqual([false, false]);
    expect(writes).toEqual([]);

    const [, , foreignTarget = ''] = (allowed4[0] ?? '').split(' ');
    const foreign = foreignTarget.split(',').slice(0, 2).concat('192.0.2.0/24').join(',');
    await ipset(['add', 'dockfw-allowed4', foreign]);
    const repaired = byFamily(await reconciler.reconcile(desired));
    expect(repaired[4]?.drift.unexpected).toEqual([`dockfw-allowed4 ${foreign}`]);
    expect(repaired[4]?.desiredChanged).toBe(false);
    expect(await saved('dockfw-allowed4')).toEqual(allowed4);

    await ipset(['flush', 'dockfw-allowed4']);
    expect(byFamily(await reconciler.reconcile(desired))[4]?.written).toBe(true);
    expect(await saved('dockfw-allowed4')).toEqual(allowed4);

    // In use by a rule: the kernel refuses; with the chain flushed first, it goes.
    await expect(ipset(['destroy', 'dockfw-allowed4'])).rejects.toThrow(/in use/);
    await ipt(ns, 4, variant, ['-F', 'DOCKFW-IN']);
    await ipset(['destroy', 'dockfw-allowed4']);
    writes.splice(0);
    const rebuilt = byFamily(await reconciler.reconcile(desired));
    expect(rebuilt[4]?.drift.structural).toEqual(['set dockfw-allowed4 missing']);
    expect(writes).toEqual(['swap 4']);
    expect(await saved('dockfw-allowed4')).toEqual(allowed4);
    expect(chain(await save(ns, 4, variant), 'DOCKFW-IN')).toContain(
      '-A DOCKFW-IN -m set --match-set dockfw-allowed4 dst,dst,src -j RETURN',
    );
    const names = (await ipset(['list', '-n'])).stdout.split('\n');
    expect(names.filter((n) => n.endsWith('-t'))).toEqual([]);
    expect((await reconciler.reconcile(desired)).map((r) => r.written)).toEqual([false, false]);
  });

  it('on engines without an IPv6 DOCKER-USER keeps the IPv6 jump first in FORWARD', async () => {
    const ns = await newNamespace();
    await dockerLayout(ns, variant, { old: false, ipv6UserChain: false });
    const reconciler = new IptablesReconciler({ run: runIn(ns), legacyTableNames: legacyTablesIn(ns) });
    const reports = byFamily(await reconciler.reconcile(await fixtureState()));
    expect(reports[6]).toMatchObject({ placement: { variant, parent: 'FORWARD' }, written: true });
    expect(chain(await save(ns, 6, variant), 'FORWARD')).toEqual([
      '-A FORWARD -j DOCKFW',
      '-A FORWARD -s 2001:db8:1::13/128 -j DROP',
    ]);
    expect(chain(await save(ns, 4, variant), 'DOCKER-USER')[0]).toBe('-A DOCKER-USER -j DOCKFW');
  });
});

describe('across variants', () => {
  it('writes where Docker’s chains are, not into the other variant', async () => {
    const ns = await newNamespace();
    await dockerLayout(ns, 'legacy', { old: false, ipv6UserChain: true });
    // The other variant is in use too, without Docker's chains.
    await ipt(ns, 4, 'nft', ['-A', 'FORWARD', '-s', '198.51.100.98', '-j', 'DROP']);
    const reconciler = new IptablesReconciler({ run: runIn(ns), legacyTableNames: legacyTablesIn(ns) });
    const reports = await reconciler.reconcile(await fixtureState());
    expect(reports.map((r) => (r.placement as { variant?: string }).variant)).toEqual(['legacy', 'legacy']);
    expect((await save(ns, 4, 'nft')).some((l) => l.includes('DOCKFW'))).toBe(false);
  });

  it('removes its rules from the variant Docker left (they would still judge every packet)', async () => {
    const ns = await newNamespace();
    const desired = await fixtureState();
    // Docker used iptables-legacy, and dockfw with it.
    await dockerLayout(ns, 'legacy', { old: true, ipv6UserChain: true });
    await new IptablesReconciler({ run: runIn(ns), legacyTableNames: legacyTablesIn(ns) }).reconcile(desired);
    const legacyBefore = (await save(ns, 4, 'legacy')).filter((l) => !l.includes('DOCKFW'));
    // Now Docker runs on iptables-nft (its legacy chains stay behind, as they do).
    await dockerLayout(ns, 'nft', { old: false, ipv6UserChain: true });
    await ipt(ns, 4, 'nft', ['-A', 'DOCKER-FORWARD', '-j', 'ACCEPT']);
    await ipt(ns, 6, 'nft', ['-A', 'DOCKER-FORWARD', '-j', 'ACCEPT']);
    const reports = await new IptablesReconciler({
      run: runIn(ns),
      legacyTableNames: legacyTablesIn(ns),
    }).reconcile(desired);
    expect(
      reports.map((r) => [r.family, (r.placement as { variant?: string }).variant, r.removedFrom]),
    ).toEqual([
      [4, 'nft', 'legacy'],
      [6, 'nft', 'legacy'],
    ]);
    expect(await save(ns, 4, 'legacy')).toEqual(legacyBefore);
    expect((await save(ns, 6, 'legacy')).some((l) => l.includes('DOCKFW'))).toBe(false);
    expect(chain(await save(ns, 4, 'nft'), 'DOCKER-USER')[0]).toBe('-A DOCKER-USER -j DOCKFW');
  });

  it('uninstall removes dockfw from every variant and family, and nothing else', async () => {
    const ns = await newNamespace();
    await dockerLayout(ns, 'nft', { old: false, ipv6UserChain: true });
    await dockerLayout(ns, 'legacy', { old: true, ipv6UserChain: false });
    const desired = await fixtureState();
    const before = Object.fromEntries(
      await Promise.all(
        VARIANTS.flatMap((v) =>
          [4, 6].map(async (f) => [`${f}/${v}`, await save(ns, f as Family, v)] as const),
        ),
      ),
    );
    // dockfw in the nft tables (where Docker is) and, left over from an earlier setup, in legacy.
    await new IptablesReconciler({ run: runIn(ns), legacyTableNames: () => Promise.resolve('') }).reconcile(
      desired,
    );
    const legacyOnly: CommandRunner = (file, args, input) =>
      runIn(ns)(file.replace('-nft-', '-legacy-'), args, input);
    await new IptablesReconciler({ run: legacyOnly, legacyTableNames: () => Promise.resolve('') }).reconcile(
      desired,
    );
    expect((await save(ns, 6, 'legacy')).some((l) => l.includes('DOCKFW'))).toBe(true);

    const reports = await uninstall({ run: runIn(ns), legacyTableNames: legacyTablesIn(ns) });
    expect(reports.map((r) => `${r.family}/${r.variant}`).sort()).toEqual([
      '4/legacy',
      '4/nft',
      '6/legacy',
      '6/nft',
    ]);
    for (const [key, lines] of Object.entries(before)) {
      const [family, variant] = key.split('/') as [string, Variant];
      expect(await save(ns, Number(family) as Family, variant), key).toEqual(lines);
    }
    expect(await uninstall({ run: runIn(ns), legacyTableNames: legacyTablesIn(ns) })).toEqual([]);
  });

  it('says clearly when the iptables tools are missing', async () => {
    const missing: CommandRunner = (file, args, input) => runCommand(`${file}-not-installed`, args, input);
    const reconciler = new IptablesReconciler({ run: missing, legacyTableNames: () => Promise.resolve('') });
    const error = await reconciler.reconcile(await fixtureState()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect((error as CommandError).message).toMatch(
      /iptables-nft-save-not-installed not found: install iptables/,
    );
  });
});
