import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0); treat it as gone.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

export function readPidFile(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** SIGTERM, wait, then SIGKILL if the process is still there. */
export async function terminate(pid: number, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  try {
    await waitUntil(() => !isAlive(pid), graceMs, `pid ${pid} to exit`);
  } catch {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await waitUntil(() => !isAlive(pid), 5_000, `pid ${pid} to die`);
  }
}

export interface ProcessInfo {
  pid: number;
  cmdline: string;
}

/** Processes whose command line contains `needle` (used to find what a test host left behind). */
export async function findProcesses(needle: string): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      if (cmdline.includes(needle) && isAlive(pid)) found.push({ pid, cmdline });
    } catch {
      // The process exited while we looked.
    }
  }
  return found;
}

/**
 * Container processes whose root file system lies below `prefix` (an overlay
 * with upperdir there). They outlive a killed shim, and their command line does
 * not name the test host, so they are found by their root mount.
 */
export async function findProcessesRootedUnder(prefix: string): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const mountinfo = await readFile(`/proc/${entry}/mountinfo`, 'utf8');
      const root = mountinfo.split('\n').find((line) => line.split(' ')[4] === '/');
      if (root?.includes(`upperdir=${prefix}`) && isAlive(Number(entry))) {
        const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
        found.push({ pid: Number(entry), cmdline });
      }
    } catch {
      // The process exited while we looked.
    }
  }
  return found;
}

/** Children of `parent` (as `pgrep -P` finds them, through /proc) with their command lines. */
export function childrenOf(parent: number | undefined): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
      if (Number(ppid) !== parent) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      found.push({ pid: Number(entry), cmdline });
    } catch {
      // The process exited while we looked.
    }
  }
  return found;
}
