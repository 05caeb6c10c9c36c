// The drop record ipsets of the iptables backend: created before the restore
// that references them, read by `dockfw drops` and the daemon, destroyed on
// uninstall once no rule references them. Argument arrays, never a shell.
import type { Family, Protocol } from '../../docker/snapshot.js';
import type { DropRecord } from '../../drops/record.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { RECORD_IPSETS } from './chains.js';
import { destroySets } from './ipset.js';
import { CommandError, type CommandRunner } from '../command.js';
import { readRecordSets, type RecordSets } from '../record-sets.js';

/** How long a record lives after its first drop, in seconds. */
export const IPSET_RECORD_TIMEOUT_SECONDS = 3600;

/** `ipset create -exist …` for one family's record set. */
export function recordSetCreateArgs(family: Family, maxelem: number): string[] {
  if (!Number.isInteger(maxelem) || maxelem < 1 || maxelem > 1_048_576)
    throw new RangeError(`refusing an ipset maxelem of ${maxelem}`);
  return [
    'create',
    '-exist',
    RECORD_IPSETS[family],
    'hash:ip,port,ip',
    'family',
    family === 4 ? 'inet' : 'inet6',
    'counters',
    'timeout',
    String(IPSET_RECORD_TIMEOUT_SECONDS),
    'maxelem',
    String(maxelem),
  ];
}

export type RecordSetState = 'ready' | 'no-ipset' | 'failed';

/**
 * Makes sure the family's record set exists. One made earlier with other
 * parameters (`-exist` then refuses) is kept: it still records.
 */
export async function ensureRecordSet(
  run: CommandRunner,
  family: Family,
  maxelem: number,
): Promise<{ state: RecordSetState; error?: CommandError }> {
  try {
    await run('ipset', recordSetCreateArgs(family, maxelem));
    return { state: 'ready' };
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    if (error.missing) return { state: 'no-ipset', error };
    if (/already exists/.test(error.stderr)) return { state: 'ready' };
    return { state: 'failed', error };
  }
}

/** Destroys both record sets; call only once no rule references them. Resolves with the ones destroyed. */
export function destroyRecordSets(run: CommandRunner): Promise<string[]> {
  // Gone already, or still referenced by rules someone else wrote: left as it is.
  return destroySets(run, [RECORD_IPSETS[4], RECORD_IPSETS[6]]);
}

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

function canonical(family: Family, text: string): string | undefined {
  const value = family === 4 ? parseIPv4(text) : parseIPv6(text);
  return value === undefined ? undefined : formatAddress(family, value);
}

/** Capacity and timeout from the `create` line, records from the `add` lines of `ipset save NAME`. */
export function parseIpsetSave(
  text: string,
  family: Family,
): { records: DropRecord[]; capacity: number; timeout: number } {
  const name = RECORD_IPSETS[family];
  const records: DropRecord[] = [];
  let capacity = 0;
  let timeout = IPSET_RECORD_TIMEOUT_SECONDS;
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[1] !== name) continue;
    const option = (key: string): number | undefined => {
      const i = words.indexOf(key, 3);
      const value = i < 0 ? undefined : Number(words[i + 1]);
      return value !== undefined && Number.isFinite(value) ? value : undefined;
    };
    if (words[0] === 'create') {
      capacity = option('maxelem') ?? 0;
      timeout = option('timeout') ?? timeout;
      continue;
    }
    if (words[0] !== 'add') continue;
    // dst,proto:port,src; IPv6 addresses hold no comma.
    const [dst = '', service = '', src = ''] = (words[2] ?? '').split(',');
    const colon = service.indexOf(':');
    const protocol = PROTOCOLS.find((p) => p === service.slice(0, colon));
    const port = Number(service.slice(colon + 1));
    const destination = canonical(family, dst);
    const source = canonical(family, src);
    if (protocol === undefined || !(port >= 1 && port <= 65535) || !destination || !source) continue;
    records.push({
      family,
      destination,
      protocol,
      port,
      source,
      packets: option('packets') ?? 0,
      bytes: option('bytes') ?? 0,
      expiresSeconds: option('timeout') ?? 0,
      timeoutSeconds: timeout,
      since: 'first',
    });
  }
  return { records, capacity, timeout };
}

/** Both families' records; a family without its set (or without ipset) has none. */
export async function readIpsetRecords(run: CommandRunner): Promise<RecordSets> {
  return readRecordSets(async (family) => {
    try {
      return parseIpsetSave((await run('ipset', ['save', RECORD_IPSETS[family]])).stdout, family);
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      if (error.missing) return 'stop';
      if (/does not exist/.test(error.stderr)) return 'absent';
      throw error;
    }
  });
}
