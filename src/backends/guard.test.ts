import { describe, expect, it } from 'vitest';
import { saveText } from './iptables/fake-iptables.js';
import { parseFilterTable } from './iptables/read.js';
import { renderSyncPayload } from './iptables/render.js';
import { tableSpec } from './nftables/elements.js';
import { parseTable } from './nftables/read.js';
import { renderTablePayload } from './nftables/render.js';
import { loadConfig } from '../config/config.js';
import { desiredState } from '../policy/desired.js';
import { emptyDesired } from './guard.js';
import { iptablesGuardPlan, variantFromVersion } from './iptables/guard.js';
import { nftablesGuardPlan } from './nftables/guard.js';

const config = loadConfig({});
const empty = emptyDesired(config);
const BOOT = parseFilterTable('');

describe('iptablesGuardPlan', () => {
  it('on an empty ruleset: the render of an engine without containers, plus DOCKER-USER created', () => {
    const plan = iptablesGuardPlan(empty, 4, BOOT);
    const bare = desiredState({ containers: [], bridges: [] }, config);
    const render = renderSyncPayload({ ...bare, bridgesUnknown: true }, 4, {
      parent: 'DOCKER-USER',
      positions: [],
    });
    expect(plan).toEqual({
      kind: 'install',
      payload: render.replace('*filter\n', '*filter\n:DOCKER-USER - [0:0]\n'),
    });
    expect(plan.kind === 'install' && plan.payload).toContain('-j DROP');
    expect(plan.kind === 'install' && plan.payload).toMatch(/^-I DOCKER-USER 1 -j DOCKFW$/m);
    expect(plan.kind === 'install' && plan.payload).not.toMatch(/dockfw [0-9a-f]{12}/);
    // No bridge is known at boot: the catch-all holds on every interface (custom bridge names too).
    expect(plan.kind === 'install' && plan.payload).toMatch(
      /^-A DOCKFW-IN -m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP$/m,
    );
    expect(plan.kind === 'install' && plan.payload).not.toMatch(/-o br-\+/);
  });

  it('keeps an existing DOCKER-USER and its rules (declaring it would flush it)', () => {
    const table = parseFilterTable(saveText({ FORWARD: [], 'DOCKER-USER': ['-s 198.51.100.7/32 -j DROP'] }));
    const plan = iptablesGuardPlan(empty, 6, table);
    expect(plan.kind).toBe('install');
    const payload = plan.kind === 'install' ? plan.payload : '';
    expect(payload).not.toContain(':DOCKER-USER');
    expect(payload).not.toMatch(/^-[DF] DOCKER-USER/m);
    expect(payload).toBe(renderSyncPayload(empty, 6, { parent: 'DOCKER-USER', positions: [] }));
  });

  it('fills empty dockfw chains left behind, keeping a jump already first', () => {
    const table = parseFilterTable(saveText({ 'DOCKER-USER': ['-j DOCKFW'], DOCKFW: [], 'DOCKFW-IN': [] }));
    const plan = iptablesGuardPlan(empty, 4, table);
    expect(plan).toEqual({
      kind: 'install',
      payload: renderSyncPayload(empty, 4, { parent: 'DOCKER-USER', positions: [1] }),
    });
  });

  it('leaves rules a dockfw wrote alone (guard run twice, or dockfw running)', () => {
    const table = parseFilterTable(
      saveText({
        'DOCKER-USER': ['-j DOCKFW'],
        DOCKFW: ['-i lo -j RETURN'],
        'DOCKFW-IN': [
          '-d 172.17.0.2/32 -p tcp -m tcp --dport 80 -m comment --comment "dockfw aaaaaaaaaaaa" -j RETURN',
        ],
      }),
    );
    expect(iptablesGuardPlan(empty, 4, table)).toEqual({
      kind: 'already-guarded',
      holding: ['DOCKFW', 'DOCKFW-IN'],
    });
  });

  it('honours DOCKFW_EXTERNAL_INTERFACES like a sync does', () => {
    const outside = emptyDesired(loadConfig({ DOCKFW_EXTERNAL_INTERFACES: 'eth0' }));
    const plan = iptablesGuardPlan(outside, 4, BOOT);
    expect(plan.kind === 'install' && plan.payload).toMatch(/^-A DOCKFW -i eth0 -j DOCKFW-IN$/m);
  });
});

describe('nftablesGuardPlan', () => {
  it('without the table: the whole table of an engine without containers', () => {
    expect(nftablesGuardPlan(empty, undefined)).toEqual({
      kind: 'install',
      payload: renderTablePayload(tableSpec(empty)),
    });
    // No bridge is known at boot: the catch-all holds on every interface, under a role of its
    // own, so the first sync (which knows the bridges) rewrites the chain.
    const payload = renderTablePayload(tableSpec(empty));
    expect(payload).toContain('ct status dnat counter drop comment "dockfw catch-all-every-interface"');
    expect(payload).not.toContain('oifname @dnatbridges');
  });

  it('leaves a table whose chain holds rules alone', () => {
    const seen = parseTable(
      JSON.stringify({
        nftables: [
          { table: { family: 'inet', name: 'dockfw' } },
          {
            chain: {
              family: 'inet',
              table: 'dockfw',
              name: 'forward',
              type: 'filter',
              hook: 'forward',
              prio: -10,
              policy: 'accept',
            },
          },
          {
            rule: {
              family: 'inet',
              table: 'dockfw',
              chain: 'forward',
              expr: [{ return: null }],
              comment: 'dockfw catch-all',
            },
          },
        ],
      }),
    );
    expect(nftablesGuardPlan(empty, seen)).toEqual({
      kind: 'already-guarded',
      holding: ['inet dockfw forward'],
    });
  });

  it('replaces an empty table', () => {
    const seen = parseTable(JSON.stringify({ nftables: [{ table: { family: 'inet', name: 'dockfw' } }] }));
    expect(nftablesGuardPlan(empty, seen).kind).toBe('install');
  });
});

describe('variantFromVersion', () => {
  it('reads the variant iptables names', () => {
    expect(variantFromVersion('iptables v1.8.9 (nf_tables)\n')).toBe('nft');
    expect(variantFromVersion('iptables v1.8.9 (legacy)\n')).toBe('legacy');
    expect(variantFromVersion('iptables v1.6.1\n')).toBe('legacy');
  });
});
