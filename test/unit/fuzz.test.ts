// Short fuzz runs of test/unit/fuzz-properties.ts in every `npm test`. The long
// run (100,000 cases per property) is scripts/fuzz-long.sh; DOCKFW_FUZZ_RUNS
// and DOCKFW_FUZZ_SEED reproduce a failure here.
import { describe, it } from 'vitest';
import { PROPERTIES } from './fuzz-properties.js';

const RUNS = Number(process.env.DOCKFW_FUZZ_RUNS ?? 300);
const SEED = process.env.DOCKFW_FUZZ_SEED === undefined ? {} : { seed: Number(process.env.DOCKFW_FUZZ_SEED) };

describe('hostile input never crashes a sync, leaves the grammar or widens an allow list', () => {
  for (const [name, property] of Object.entries(PROPERTIES)) {
    it(name, () => property({ numRuns: RUNS, ...SEED }), 30_000 + RUNS * 20);
  }
});
