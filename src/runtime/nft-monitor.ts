// `nft monitor` as a child process: one line per ruleset change, as the kernel
// reports it (iptables-nft writes show up too; legacy iptables ones do not).
// The line grammar is `<verb> <object> <family> <table> [<chain|set> …]`,
// and `# new generation N by process P (name)` after each transaction.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A running monitor: its output lines, until it exits. */
export interface MonitorProcess {
  /** Ends when the process exits; throws when it could not start. */
  readonly lines: AsyncIterable<string>;
  /** Resolves when the process has exited (or failed to start). */
  readonly exited: Promise<MonitorExit>;
  stop(): void;
}

export interface MonitorExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the program could not be started at all. */
  readonly error?: NodeJS.ErrnoException;
  /** The end of its stderr, to say why it died. */
  readonly stderr: string;
}

export type MonitorSpawner = () => MonitorProcess;

const STDERR_KEPT = 2000;

/** Starts `nft monitor` (argument array, no shell). */
export const spawnNftMonitor: MonitorSpawner = () => {
  const child = spawn('nft', ['monitor'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });
  let spawnError: NodeJS.ErrnoException | undefined;
  const exited = new Promise<MonitorExit>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      spawnError = error;
      resolve({ code: null, signal: null, error, stderr });
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  const reader = createInterface({ input: child.stdout, crlfDelay: Infinity });
  async function* lines(): AsyncGenerator<string> {
    for await (const line of reader) yield line;
    await exited;
    if (spawnError) throw spawnError;
  }
  return {
    lines: lines(),
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
};

/** Chain names whose changes matter: dockfw's own and the ones its jump lives in. */
const PARENT_CHAINS = new Set(['DOCKER-USER', 'FORWARD']);
const OWN_TABLE = 'dockfw';
const OWN_CHAIN_PREFIX = 'DOCKFW';

const CHANGE = /^(add|create|insert|replace|delete|destroy|flush|rename|update|reset) (\S+)(?: (.*))?$/;

/**
 * Whether a monitor line may concern dockfw's rules. Changes to other tables'
 * or chains' contents (Docker's DNAT on every container start, say) are not;
 * a whole table going (flush ruleset deletes every table), or anything not
 * understood, is: better one read too many than a missed flush.
 */
export function concernsDockfw(line: string): boolean {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return false;
  const match = CHANGE.exec(text);
  if (!match) return true;
  const [, , object = '', rest = ''] = match;
  const [, table = '', name = ''] = rest.split(' ');
  if (table === OWN_TABLE) return true;
  switch (object) {
    case 'rule':
    case 'chain':
      return name.startsWith(OWN_CHAIN_PREFIX) || PARENT_CHAINS.has(name);
    case 'set':
    case 'element':
    case 'map':
    case 'flowtable':
    case 'counter':
    case 'quota':
    case 'limit':
    case 'ct':
    case 'secmark':
    case 'synproxy':
      return false;
    default:
      // table, ruleset, or an object kind this parser does not know.
      return true;
  }
}
