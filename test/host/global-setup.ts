import { describeTraces, findTraces, newTraces, removeTraces, type Traces } from './leftovers.js';
import { readProvisioned } from './provisioned.js';

/**
 * vitest globalSetup of the e2e project: refuses to start without provisioning
 * or root, and afterwards fails the run if a test host left anything behind
 * (namespaces, engine processes, mounts), after removing it.
 */
export default async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) throw new Error('the e2e tests need root (network namespaces, dockerd)');
  readProvisioned();
  const before: Traces = await findTraces();

  return async function teardown(): Promise<void> {
    const leaked = newTraces(before, await findTraces());
    const description = describeTraces(leaked);
    if (description === undefined) return;
    await removeTraces(leaked);
    throw new Error(`test hosts left traces behind (now removed): ${description}`);
  };
}
