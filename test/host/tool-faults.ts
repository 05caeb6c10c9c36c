/**
 * A PATH folder of wrapper scripts that stands in for the firewall tools in
 * dockfw's process: each runs the real tool, or fails, or hangs, as the mode
 * file says; "missing" takes the whole folder away, so every tool is not found.
 * Give dockfw `PATH: faults.binDir` (nothing else on PATH, so nothing real is
 * found behind a wrapper).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rename, rm, symlink, writeFile, chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { childrenOf, waitUntil } from './processes.js';

/** `fail-restore`: only the writers (…-restore, nft -f) fail; reading works. */
export type ToolMode = 'ok' | 'fail' | 'fail-restore' | 'hang' | 'missing';

/** How long a hanging tool sleeps: longer than dockfw's 30 s command timeout, bounded so nothing lingers. */
export const HANG_SECONDS = 90;

export interface ToolFaults {
  /** The folder to put (alone) on dockfw's PATH. */
  readonly binDir: string;
  /** A private xtables lock file: give dockfw XTABLES_LOCKFILE=lockFile, hold it with flock. */
  readonly lockFile: string;
  /**
   * A fault applies to the tools started after it. dockfw keeps a copy of its
   * last write's tool (`nft -f -`, `ipset restore`) started and waiting for the
   * next payload: given dockfw's pid, a mode change also ends those copies and
   * waits until dockfw has reaped them, so its next write starts one under the fault.
   * Resolves to how many it ended.
   */
  setMode(mode: ToolMode, dockfwPid?: number): Promise<number>;
  remove(): Promise<void>;
}

/** Where each wrapped tool really lives. */
export const REAL_TOOLS: Readonly<Record<string, string>> = Object.fromEntries(
  [
    'iptables-nft-save',
    'iptables-nft-restore',
    'ip6tables-nft-save',
    'ip6tables-nft-restore',
    'iptables-legacy-save',
    'iptables-legacy-restore',
    'ip6tables-legacy-save',
    'ip6tables-legacy-restore',
    'iptables-save',
    'ip6tables-save',
    'iptables',
    'ip6tables',
    'nft',
    // The iptables backend keeps its verdicts in ipsets.
    'ipset',
  ].map((tool) => [tool, `/usr/sbin/${tool}`]),
);

function wrapper(tool: string, real: string, modeFile: string): string {
  const writer = tool.endsWith('-restore');
  return [
    '#!/bin/sh',
    `# ${tool}, or a fault (test/host/tool-faults.ts)`,
    `case "$(/bin/cat '${modeFile}' 2>/dev/null)" in`,
    `  fail) echo '${tool}: injected failure' >&2; exit 1 ;;`,
    ...(writer ? [`  fail-restore) echo '${tool}: line 2 failed: injected failure' >&2; exit 1 ;;`] : []),
    // nft writes with -f (the payload on stdin); reading (-j list) and monitor keep working.
    ...(tool === 'nft'
      ? [
          `  fail-restore) case " $* " in *" -f "*) echo '/dev/stdin:2:1-5: Error: injected failure' >&2; exit 1 ;; esac ;;`,
        ]
      : []),
    // ipset writes with restore (the batch on stdin); save and list keep working.
    ...(tool === 'ipset'
      ? [
          `  fail-restore) case " $* " in *" restore "*) echo 'ipset v7.17: Error in line 1: injected failure' >&2; exit 1 ;; esac ;;`,
        ]
      : []),
    `  hang) exec /bin/sleep ${HANG_SECONDS} ;;`,
    'esac',
    `exec '${real}' "$@"`,
    '',
  ].join('\n');
}

export async function createToolFaults(): Promise<ToolFaults> {
  const dir = await mkdtemp('/tmp/dfw-tools-');
  const binDir = path.join(dir, 'bin');
  const hidden = path.join(dir, 'bin.missing');
  const modeFile = path.join(dir, 'mode');
  await mkdir(binDir);
  await writeFile(modeFile, 'ok\n');
  for (const [tool, real] of Object.entries(REAL_TOOLS)) {
    const file = path.join(binDir, tool);
    await writeFile(file, wrapper(tool, real, modeFile));
    await chmod(file, 0o755);
  }
  // The test starts dockfw through nsenter, found on this PATH too.
  await symlink('/usr/bin/nsenter', path.join(binDir, 'nsenter'));
  let missing = false;
  return {
    binDir,
    lockFile: path.join(dir, 'xtables.lock'),
    async setMode(mode, dockfwPid) {
      if (mode === 'missing' && !missing) await rename(binDir, hidden);
      if (mode !== 'missing' && missing) await rename(hidden, binDir);
      missing = mode === 'missing';
      await writeFile(modeFile, `${mode}\n`);
      return dockfwPid === undefined ? 0 : await endWaitingCopies(dockfwPid);
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A waiting write copy's command line: the tool itself, its wrapper, or a hang's sleep. */
const WAITING_COPY = /(?:ipset restore|nft -f -|sleep \d+)$/;

/** Ends `parent`'s waiting write copies by pid; resolves once they are reaped (gone from /proc). */
async function endWaitingCopies(parent: number): Promise<number> {
  const pids = childrenOf(parent)
    .filter((child) => WAITING_COPY.test(child.cmdline))
    .map((child) => child.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  // Not isAlive: a zombie is one dockfw has not reaped yet, and would not know has exited.
  await waitUntil(
    () => pids.every((pid) => !existsSync(`/proc/${pid}`)),
    5000,
    `dockfw to reap ${pids.join(', ')}`,
    20,
  );
  return pids.length;
}
