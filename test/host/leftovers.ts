import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { mountsUnder, unmountAll } from './mounts.js';
import { deleteNamespace, listNamespaces } from './netns.js';
import { findProcesses, findProcessesRootedUnder, terminate } from './processes.js';
import { HOST_DIR_PREFIX, NETNS_PREFIX } from './test-host.js';

/** Traces a test host leaves on the machine: namespaces, processes, mounts. */
export interface Traces {
  netns: string[];
  /** Container processes rooted in a test host folder, then dockerd, containerd and shims naming one. */
  pids: number[];
  mounts: string[];
}

async function mountsStartingWith(prefix: string): Promise<string[]> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(prefix));
}

/** Traces of the test hosts of one run (host ids start with the run id). */
export async function findTraces(runId: string): Promise<Traces> {
  return {
    netns: (await listNamespaces()).filter((name) => name.startsWith(`${NETNS_PREFIX}${runId}`)),
    pids: [
      ...(await findProcessesRootedUnder(`${HOST_DIR_PREFIX}${runId}`)),
      ...(await findProcesses(`${HOST_DIR_PREFIX}${runId}`)),
    ].map((p) => p.pid),
    mounts: await mountsStartingWith(`${HOST_DIR_PREFIX}${runId}`),
  };
}

/** Traces present now but not in `before`. */
export function newTraces(before: Traces, now: Traces): Traces {
  return {
    netns: now.netns.filter((n) => !before.netns.includes(n)),
    pids: now.pids.filter((p) => !before.pids.includes(p)),
    mounts: now.mounts.filter((m) => !before.mounts.includes(m)),
  };
}

export function describeTraces(traces: Traces): string | undefined {
  const parts = [
    traces.netns.length > 0 ? `netns ${traces.netns.join(', ')}` : '',
    traces.pids.length > 0 ? `processes ${traces.pids.join(', ')}` : '',
    traces.mounts.length > 0 ? `mounts ${traces.mounts.join(', ')}` : '',
  ].filter((p) => p !== '');
  return parts.length > 0 ? parts.join('; ') : undefined;
}

/** Removes the given traces (after reporting them), so one leak does not poison later runs. */
export async function removeTraces(traces: Traces, runId: string): Promise<void> {
  for (const pid of traces.pids) await terminate(pid, 5_000).catch(() => undefined);
  // /tmp/dfw-<id>/… → /tmp/dfw-<id>
  const dirs = new Set(traces.mounts.map((m) => m.split('/').slice(0, 3).join('/')));
  for (const dir of dirs) await unmountAll(dir);
  for (const name of traces.netns) await deleteNamespace(name);
  for (const dir of dirs) {
    if ((await mountsUnder(dir)).length > 0) throw new Error(`could not unmount everything under ${dir}`);
  }
  const runDirs = (await readdir('/tmp')).filter((name) => name.startsWith(`dfw-${runId}`));
  for (const name of runDirs) await rm(path.join('/tmp', name), { recursive: true, force: true });
}
