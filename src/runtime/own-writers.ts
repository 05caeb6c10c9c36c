// Which nf_tables commits are dockfw's own, by identity rather than by time:
// `nft monitor` ends each transaction with `# new generation N by process P`,
// P being the committing process's pid as the kernel numbers it (the initial
// pid namespace). dockfw's write children (a restore, `nft -f -`) are recorded
// as they are started; a commit by one of them is dockfw's own write.
//
// Only where dockfw's pids are the kernel's (it runs in the initial pid
// namespace: on the host, or a container with `pid: host`). In a container
// with its own pid namespace the numbers differ, so nothing is taken as own
// and every dockfw write costs one extra read-and-compare sync.
//
// Each writer commits at most once (one restore or `nft -f` is one
// transaction), so a pid is forgotten once its commit is seen; a second one
// would just be checked. Of writers that never committed (they failed) the
// last KEPT are kept. A foreign commit is only ever mistaken for dockfw's when
// its process reuses one of those few pids, i.e. after the pid space wrapped
// around since; the deep periodic check (every 10th) still catches that.
import { readlinkSync } from 'node:fs';

/** The initial pid namespace's inode number (PROC_PID_INIT_INO, fixed in the kernel). */
const INITIAL_PID_NAMESPACE = 'pid:[4026531836]';

const KEPT = 16;

export class OwnWriters {
  private readonly pids: number[] = [];

  constructor(private readonly kept = KEPT) {}

  add(pid: number): void {
    this.pids.push(pid);
    if (this.pids.length > this.kept) this.pids.shift();
  }

  /** Whether `pid` is a writer's whose commit was not seen yet; forgets it if so. */
  take(pid: number): boolean {
    const index = this.pids.indexOf(pid);
    if (index < 0) return false;
    this.pids.splice(index, 1);
    return true;
  }
}

/** Whether this process sees pids as the kernel reports them in `nft monitor`. */
export function inInitialPidNamespace(readLink: (file: string) => string = readlinkSync): boolean {
  try {
    return readLink('/proc/self/ns/pid') === INITIAL_PID_NAMESPACE;
  } catch {
    return false;
  }
}
