/* global console, process */
// Prints one closing line for the whole run from vitest's JSON reports:
// "tests: N passed, N failed" (+ skipped), so CI reads one total for both projects.
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
for (const name of ['unit', 'e2e']) {
  const file = `.cache/results/${name}.json`;
  if (!existsSync(file)) {
    console.log(`${name}: no report (the run stopped before it)`);
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests;
  // A file that fails to load has no failed test, only a failed suite.
  failed += report.numFailedTests || report.numFailedTestSuites;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
