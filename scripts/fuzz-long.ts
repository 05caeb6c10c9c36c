// The long fuzz run: every property of test/unit/fuzz-properties.ts, 100,000
// cases each (or as many as given). Run it with
//   scripts/fuzz-long.sh [RUNS] [SEED]
// which compiles this file to .cache/fuzz-build (Node 20 cannot run TypeScript
// directly). A failure prints the counterexample and the seed to replay it:
//   DOCKFW_FUZZ_RUNS=RUNS DOCKFW_FUZZ_SEED=SEED npx vitest run --project unit test/unit/fuzz
import { PROPERTIES } from '../test/unit/fuzz-properties.js';

const runs = Number(process.argv[2] ?? 100_000);
const seed = process.argv[3] === undefined ? Date.now() : Number(process.argv[3]);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  console.error('usage: fuzz-long [RUNS] [SEED]');
  process.exit(2);
}

let failed = false;
for (const [name, run] of Object.entries(PROPERTIES)) {
  const started = Date.now();
  try {
    run({ numRuns: runs, seed });
    console.log(
      `${name}: ${runs} cases passed in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${seed})`,
    );
  } catch (error) {
    failed = true;
    console.error(
      `${name}: FAILED (seed ${seed})\n${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
process.exit(failed ? 1 : 0);
