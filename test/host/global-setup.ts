import { randomBytes } from 'node:crypto';
import { describeTraces, findTraces, newTraces, removeTraces } from './leftovers.js';
import { readProvisioned } from './provisioned.js';
import { RUN_ID_ENV } from './test-host.js';

/**
 * vitest globalSetup of the e2e project: refuses to start without provisioning
 * or root, gives this run an id that prefixes all its test hosts (workers inherit
 * the environment), and afterwards fails the run if one of its hosts left
 * anything behind (namespaces, engine processes, mounts), after removing it.
 */
export default async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) throw new Error('the e2e tests need root (network namespaces, dockerd)');
  readProvisioned();
  const runId = randomBytes(2).toString('hex');
  process.env[RUN_ID_ENV] = runId;
  const before = await findTraces(runId);

  return async function teardown(): Promise<void> {
    const leaked = newTraces(before, await findTraces(runId));
    const description = describeTraces(leaked);
    if (description === undefined) return;
    await removeTraces(leaked, runId);
    // vitest only logs an error thrown here ("error during close") and still exits 0.
    process.exitCode = 1;
    throw new Error(`test hosts left traces behind (now removed): ${description}`);
  };
}
