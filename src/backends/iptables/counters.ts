// dockfw's own rule counters, read from `iptables-save -c`: how many packets
// and bytes the catch-all has dropped (and, in chains an older dockfw wrote with
// one rule per container, each container's DROP rules; the set layout drops them
// all with one lookup, counted per container from the drop records instead).
import type { Family } from '../../docker/snapshot.js';
import type { CommandRunner } from '../command.js';
import { addTraffic as add, NO_TRAFFIC as ZERO, type FamilyCounters, type Traffic } from '../firewall.js';
import { CATCH_ALL_COMMENT, CHAIN_IN, CHAIN_PUBLISHED, OWNED_PREFIX } from './chains.js';
import { saveCommand, type Variant } from './read.js';

const COUNTED_RULE = /^\[(\d+):(\d+)\]\s+-A\s+(\S+)\s+(.*)$/;
const CONTAINER_COMMENT = /--comment "?dockfw ([0-9a-f]{12})"?(?:\s|$)/;

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
