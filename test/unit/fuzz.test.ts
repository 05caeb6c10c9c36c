// Short fuzz runs of test/unit/fuzz-properties.ts in every `npm test`. The long
// run (100,000 cases per property) is scripts/fuzz-long.sh; DOCKFW_FUZZ_RUNS
// and DOCKFW_FUZZ_SEED reproduce a failure here.
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/config/config.js';
import { parseInspect } from '../../src/docker/inspect.js';
import { checkPayloads, PROPERTIES } from './fuzz-properties.js';

const RUNS = Number(process.env.DOCKFW_FUZZ_RUNS ?? 300);
const SEED = process.env.DOCKFW_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.DOCKFW_FUZZ_SEED) };

describe('hostile input never crashes a sync, leaves the grammar or widens an allow list', () => {
  for (const [name, property] of Object.entries(PROPERTIES)) {
    it(name, () => property({ numRuns: RUNS, ...SEED }), 30_000 + RUNS * 20);
  }
});

describe('cases the fuzz found, kept', () => {
  it('a container on a network named host, with an address: its labels judge that address, no wider', () => {
    const container = parseInspect({
      Id: '0'.repeat(64),
      Name: '203.0.113.7 -j ACCEPT',
      State: { Running: true },
      Config: { Labels: { 'dockfw.allow.443/tcp': '::' } },
      NetworkSettings: { Networks: { host: { GlobalIPv6Address: '::ffff:203.0.113.7' } } },
    });
    expect(container.networks).toEqual([{ network: 'host', ipv6: '::ffff:203.0.113.7' }]);
    expect(() =>
      checkPayloads({ containers: [container], bridges: [] }, { ...defaultConfig(), defaultPolicy: 'allow' }),
    ).not.toThrow();
  });
});
