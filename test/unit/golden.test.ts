// Rendered payloads for realistic engines, compared with reviewed golden files.
// After an intended change: `npx vitest run --project unit test/unit/golden -u`, then
// read the diff of test/fixtures/*.golden before committing it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderPayloads, renderSetBatches, renderSummary } from '../../src/cli/plan.js';
import { loadConfig } from '../../src/config/config.js';
import { parseInspectArray } from '../../src/docker/inspect.js';
import { desiredState } from '../../src/policy/desired.js';

function render(fixture: string, env: Record<string, string>, bridges: string[]): string {
  const json: unknown = JSON.parse(readFileSync(new URL(`../fixtures/${fixture}`, import.meta.url), 'utf8'));
  const desired = desiredState({ containers: parseInspectArray(json), bridges }, loadConfig(env));
  return `${renderPayloads(desired, [4, 6])}# sets\n${renderSetBatches(desired, [4, 6])}# summary\n${renderSummary(desired)}`;
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
  ])('%s with %j', async (fixture, env, bridges, golden) => {
    await expect(render(fixture, env, bridges)).toMatchFileSnapshot(`../fixtures/${golden}`);
  });
});
