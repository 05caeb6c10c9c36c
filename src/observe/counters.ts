// dockfw's own rule counters, read from `iptables-save -c` at scrape time:
// how many packets and bytes the catch-all has dropped (and, in chains an older
// dockfw wrote with one rule per container, each container's DROP rules; the
// set layout drops them all with one lookup, counted per container from the
// drop records instead). The kernel resets a chain's counters whenever dockfw rewrites
// it, so totals are carried across rewrites here to keep the metrics monotonic.
import { CATCH_ALL_COMMENT, CHAIN_IN, CHAIN_PUBLISHED, OWNED_PREFIX } from '../backends/iptables/chains.js';
import type { CommandRunner } from '../backends/iptables/command.js';
import { saveCommand, type Variant } from '../backends/iptables/read.js';
import type { Family } from '../docker/snapshot.js';

export interface Traffic {
  readonly packets: number;
  readonly bytes: number;
}

/** What one family's owned chains say right now. */
export interface FamilyCounters {
  /**
   * DROP counters of DOCKFW-PUBLISHED (mangle: the published bindings) and
   * DOCKFW-IN (filter), by the 12-digit container id in the rule's comment. A
   * packet dropped in mangle never reaches filter, so nothing counts twice.
   */
  readonly drops: ReadonlyMap<string, Traffic>;
  readonly catchAll: Traffic;
  /** Rules in every owned chain. */
  readonly rules: number;
}

const COUNTED_RULE = /^\[(\d+):(\d+)\]\s+-A\s+(\S+)\s+(.*)$/;
const CONTAINER_COMMENT = /--comment "?dockfw ([0-9a-f]{12})"?(?:\s|$)/;

function add(a: Traffic, b: Traffic): Traffic {
  return { packets: a.packets + b.packets, bytes: a.bytes + b.bytes };
}

const ZERO: Traffic = { packets: 0, bytes: 0 };

/** Jumps to CHAIN_DROP (older layouts: DROP right in the judging chain). */
const DROPPING = /(?:^|\s)-j (?:DROP|DOCKFW-DROP)$/;

const JUDGING_CHAINS: ReadonlySet<string> = new Set([CHAIN_IN, CHAIN_PUBLISHED]);

/** Parses the filter and mangle tables of `iptables-save -c`; rules outside dockfw's chains are ignored. */
export function parseFamilyCounters(saveText: string): FamilyCounters {
  const drops = new Map<string, Traffic>();
  let catchAll = ZERO;
  let rules = 0;
  let inOwnedTable = false;
  for (const raw of saveText.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inOwnedTable = line === '*filter' || line === '*mangle';
    const match = inOwnedTable ? COUNTED_RULE.exec(line) : null;
    if (!match) continue;
    const [, packets = '0', bytes = '0', chain = '', rule = ''] = match;
    if (!chain.startsWith(OWNED_PREFIX)) continue;
    rules++;
    // A container's drops jump to DOCKFW-DROP (older layouts: DROP right there).
    if (!JUDGING_CHAINS.has(chain) || !DROPPING.test(rule)) continue;
    const traffic = { packets: Number(packets), bytes: Number(bytes) };
    if (rule.includes(`"${CATCH_ALL_COMMENT}"`)) {
      catchAll = add(catchAll, traffic);
      continue;
    }
    const id12 = CONTAINER_COMMENT.exec(rule)?.[1];
    if (id12 !== undefined) drops.set(id12, add(drops.get(id12) ?? ZERO, traffic));
  }
  return { drops, catchAll, rules };
}

export async function readFamilyCounters(
  run: CommandRunner,
  family: Family,
  variant: Variant,
): Promise<FamilyCounters> {
  const [mangle, filter] = await Promise.all(
    (['mangle', 'filter'] as const).map((table) => run(saveCommand(family, variant), ['-c', '-t', table])),
  );
  return parseFamilyCounters(`${mangle?.stdout ?? ''}${filter?.stdout ?? ''}`);
}

interface Carried {
  /** What the kernel said at the last read. */
  last: Traffic;
  /** Everything counted before the kernel's counters were last reset. */
  before: Traffic;
}

/**
 * Monotonic drop totals across chain rewrites. A rewrite (a `generation` change,
 * one per write dockfw made) or a counter going down (someone else flushed the
 * chain) means the kernel started again from zero. Drops between the last read
 * and a rewrite are not seen; scrape often for exact numbers.
 */
export class DropTotals {
  private readonly carried = new Map<string, Carried>();
  private readonly generations = new Map<Family, number>();

  /** Feeds one family's fresh read; keys not in it are forgotten (their rules are gone). */
  update(family: Family, generation: number, counters: FamilyCounters): void {
    const rewritten = this.generations.has(family) && this.generations.get(family) !== generation;
    this.generations.set(family, generation);
    const now = new Map<string, Traffic>(counters.drops);
    now.set('', counters.catchAll);
    for (const key of [...this.carried.keys()]) {
      const [keyFamily, id] = splitKey(key);
      if (keyFamily === family && !now.has(id)) this.carried.delete(key);
    }
    for (const [id, traffic] of now) {
      const key = `${family}/${id}`;
      const previous = this.carried.get(key);
      if (previous === undefined) {
        this.carried.set(key, { last: traffic, before: ZERO });
        continue;
      }
      const reset =
        rewritten || traffic.packets < previous.last.packets || traffic.bytes < previous.last.bytes;
      this.carried.set(key, {
        last: traffic,
        before: reset ? add(previous.before, previous.last) : previous.before,
      });
    }
  }

  /** Totals by 12-digit container id, both families together; the catch-all under ''. */
  totals(): Map<string, Traffic> {
    const result = new Map<string, Traffic>();
    for (const [key, { last, before }] of this.carried) {
      const [, id] = splitKey(key);
      result.set(id, add(result.get(id) ?? ZERO, add(before, last)));
    }
    return result;
  }
}

function splitKey(key: string): [Family, string] {
  const slash = key.indexOf('/');
  return [Number(key.slice(0, slash)) as Family, key.slice(slash + 1)];
}
