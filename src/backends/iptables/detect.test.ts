import { describe, expect, it } from 'vitest';
import { chooseVariant, detectIpv4, detectIpv6 } from './detect.js';
import { fakeIptables, saveText } from './fake-iptables.js';
import { parseFilterTable } from './read.js';

const DOCKER_28 = saveText({
  FORWARD: ['-j DOCKER-USER', '-j DOCKER-FORWARD'],
  'DOCKER-USER': [],
  'DOCKER-FORWARD': ['-j DOCKER-CT'],
  DOCKER: ['-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT'],
});
const BARE = saveText({ FORWARD: [] });
const noLegacy = () => Promise.resolve('');
const legacyInUse = () => Promise.resolve('filter\n');

describe('detectIpv4', () => {
  it('picks iptables-nft when Docker’s chains are there, without touching legacy tables that do not exist', async () => {
    const fake = fakeIptables({ 'iptables-nft-save': DOCKER_28, 'iptables-legacy-save': BARE });
    const placement = await detectIpv4({ run: fake.run, legacyTableNames: noLegacy });
    expect(placement?.variant).toBe('nft');
    expect(placement?.parent).toBe('DOCKER-USER');
    expect(fake.calls).toEqual(['iptables-nft-save -t filter']);
  });

  it('picks iptables-legacy when Docker wrote there', async () => {
    const fake = fakeIptables({ 'iptables-nft-save': BARE, 'iptables-legacy-save': DOCKER_28 });
    const placement = await detectIpv4({ run: fake.run, legacyTableNames: legacyInUse });
    expect(placement?.variant).toBe('legacy');
  });

  it('says "not yet" while neither variant has Docker’s chains', async () => {
    const fake = fakeIptables({ 'iptables-nft-save': BARE, 'iptables-legacy-save': BARE });
    expect(await detectIpv4({ run: fake.run, legacyTableNames: legacyInUse })).toBeUndefined();
  });

  it('works where only one variant is installed', async () => {
    const fake = fakeIptables({ 'iptables-legacy-save': DOCKER_28 });
    const placement = await detectIpv4({ run: fake.run, legacyTableNames: legacyInUse });
    expect(placement?.variant).toBe('legacy');
  });

  it('fails clearly when no iptables is installed', async () => {
    const fake = fakeIptables({});
    await expect(detectIpv4({ run: fake.run, legacyTableNames: legacyInUse })).rejects.toThrow(/not found/);
  });
});

describe('chooseVariant', () => {
  it('prefers the table whose FORWARD jumps to Docker’s chains over stale leftovers', () => {
    const stale = parseFilterTable(saveText({ FORWARD: [], 'DOCKER-USER': ['-j RETURN'] }));
    const live = parseFilterTable(DOCKER_28);
    expect(
      chooseVariant(
        new Map([
          ['nft', stale],
          ['legacy', live],
        ]),
      ),
    ).toBe('legacy');
    expect(
      chooseVariant(
        new Map([
          ['nft', live],
          ['legacy', stale],
        ]),
      ),
    ).toBe('nft');
  });
});

describe('detectIpv6', () => {
  it('jumps from DOCKER-USER when the engine made an IPv6 one', async () => {
    const fake = fakeIptables({ 'ip6tables-nft-save': DOCKER_28 });
    const placement = await detectIpv6({ run: fake.run, legacyTableNames: noLegacy }, 'nft');
    expect(placement).toMatchObject({ family: 6, variant: 'nft', parent: 'DOCKER-USER' });
  });

  it('jumps from FORWARD when nothing jumps to DOCKER-USER (made by dockfw guard, ignored by engines before 24)', async () => {
    const guarded = saveText({
      FORWARD: ['-o docker0 -j DOCKER', '-j DOCKER-ISOLATION-STAGE-1'],
      'DOCKER-USER': ['-j DOCKFW'],
      DOCKER: [],
    });
    const fake = fakeIptables({ 'ip6tables-nft-save': guarded });
    const placement = await detectIpv6({ run: fake.run, legacyTableNames: noLegacy }, 'nft');
    expect(placement).toMatchObject({ family: 6, variant: 'nft', parent: 'FORWARD' });
  });

  it('falls back to FORWARD in the IPv4 variant on engines without IPv6 chains', async () => {
    const fake = fakeIptables({ 'ip6tables-nft-save': BARE, 'ip6tables-legacy-save': '' });
    const placement = await detectIpv6({ run: fake.run, legacyTableNames: noLegacy }, 'legacy');
    expect(placement).toMatchObject({ family: 6, variant: 'legacy', parent: 'FORWARD' });
  });
});
