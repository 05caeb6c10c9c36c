import { describe, expect, it } from 'vitest';
import { FakeIpset } from './fake-ipset.js';
import { fakeIptables, saveText } from './fake-iptables.js';
import { parseFilterTable } from './read.js';
import { uninstall, uninstallPayloads } from './uninstall.js';

const OWNED = { DOCKFW: ['-j DOCKFW-IN'], 'DOCKFW-IN': ['-j RETURN'] };

describe('uninstallPayloads', () => {
  it('deletes the jump by text, flushes and deletes the owned chains, and nothing else', () => {
    const table = parseFilterTable(
      saveText({
        'DOCKER-USER': ['-j DOCKFW', '-s 198.51.100.7/32 -j DROP', '-j RETURN'],
        ...OWNED,
        DOCKER: [],
      }),
    );
    expect(uninstallPayloads(table)).toEqual([
      '*filter\n-D DOCKER-USER -j DOCKFW\n:DOCKFW - [0:0]\n:DOCKFW-IN - [0:0]\n-X DOCKFW\n-X DOCKFW-IN\nCOMMIT\n',
    ]);
  });

  it('removes jumps from FORWARD too (ip6tables on engines without IPv6 DOCKER-USER)', () => {
    const table = parseFilterTable(
      saveText({ FORWARD: ['-j DOCKFW', '-j ACCEPT'], 'DOCKER-USER': ['-j DOCKFW'], ...OWNED }),
    );
    const payloads = uninstallPayloads(table);
    expect(payloads).toHaveLength(2);
    expect(payloads[0]).toBe('*filter\n-D FORWARD -j DOCKFW\nCOMMIT\n');
    expect(payloads[1]).toContain('-D DOCKER-USER -j DOCKFW\n');
  });

  it('has nothing to do where dockfw never was', () => {
    expect(uninstallPayloads(parseFilterTable(saveText({ 'DOCKER-USER': ['-j RETURN'] })))).toEqual([]);
  });
});

describe('uninstall', () => {
  it('cleans every family and variant that has dockfw chains', async () => {
    const withDockfw = saveText({ 'DOCKER-USER': ['-j DOCKFW'], ...OWNED });
    const fake = fakeIptables({
      'iptables-nft-save': withDockfw,
      'iptables-legacy-save': withDockfw,
      'ip6tables-nft-save': saveText({ FORWARD: [] }),
      'ip6tables-legacy-save': withDockfw,
    });
    const reports = await uninstall({ run: fake.run, legacyTableNames: () => Promise.resolve('filter\n') });
    expect(reports.map((r) => `${r.family}/${r.variant}`)).toEqual(['4/nft', '4/legacy', '6/legacy']);
    expect(fake.restores.map((r) => r.file)).toEqual([
      'iptables-nft-restore',
      'iptables-legacy-restore',
      'ip6tables-legacy-restore',
    ]);
  });

  it('destroys dockfw’s ipsets once no rule references them, and no one else’s', async () => {
    const ipset = new FakeIpset();
    for (const name of ['dockfw-allowed4', 'dockfw-guarded6-t', 'docker-ext-bridges-v4', 'other'])
      ipset.tamper(['create', name, 'hash:ip,port']);
    ipset.tamper(['create', 'dockfw-drops4', 'hash:ip,port,ip']);
    const fake = fakeIptables({ 'iptables-nft-save': saveText({ FORWARD: [] }) }, undefined, ipset);
    await uninstall({ run: fake.run, legacyTableNames: () => Promise.resolve('') });
    expect(ipset.names()).toEqual(['docker-ext-bridges-v4', 'other']);
  });
});
