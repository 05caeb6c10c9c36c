// Rendered payloads for realistic engines, compared with reviewed golden files.
// After an intended change: `npx vitest run --project unit test/unit/golden -u`, then
// read the diff of test/fixtures/*.golden before committing it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderPayloads, renderSummary } from '../../src/cli/plan.js';
import { loadConfig } from '../../src/config/config.js';
import { parseInspectArray } from '../../src/docker/inspect.js';
import { desiredState } from '../../src/policy/desired.js';

function render(fixture: string, env: Record<string, string>, bridges: string[]): string {
  const json: unknown = JSON.parse(readFileSync(new URL(`../fixtures/${fixture}`, import.meta.url), 'utf8'));
  const config = loadConfig(env);
  const desired = desiredState({ containers: parseInspectArray(json), bridges }, config);
  if (config.backend === 'nftables')
    return `${renderPayloads(desired, [4, 6], config.dropRecords, 'nftables')}# summary\n${renderSummary(desired)}`;
  const sets = renderPayloads(desired, [4, 6], 0, 'iptables', true);
  return `${renderPayloads(desired, [4, 6])}# sets\n${sets}# summary\n${renderSummary(desired)}`;
}

describe('golden payloads', () => {
  it.each([
    ['example-inspect.json', {}, ['docker0', 'br-6a1f0e2d3c4b', 'br-7b2e1f3d4c5a'], 'example.allow.golden'],
    ['example-inspect.json', { DOCKFW_DEFAULT_POLICY: 'deny' }, ['docker0'], 'example.deny.golden'],
    ['multi-network.json', {}, ['docker0', 'br-0c1d2e3f4a5b', 'lan0'], 'multi-network.allow.golden'],
    [
      'multi-network.json',
      { DOCKFW_DEFAULT_POLICY: 'deny', DOCKFW_EXTERNAL_INTERFACES: 'eth0,eth1' },
      ['docker0', 'br-0c1d2e3f4a5b', 'lan0'],
      'multi-network.deny-external.golden',
    ],
    // `dockfw plan` with DOCKFW_BACKEND=nftables: the nft payload of the selected backend.
    [
      'example-inspect.json',
      { DOCKFW_BACKEND: 'nftables' },
      ['docker0', 'br-6a1f0e2d3c4b', 'br-7b2e1f3d4c5a'],
      'plan.nftables.example.allow.golden',
    ],
  ])('%s with %j', async (fixture, env, bridges, golden) => {
    await expect(render(fixture, env, bridges)).toMatchFileSnapshot(`../fixtures/${golden}`);
  });
});
