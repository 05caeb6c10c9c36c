// Reading the drop record sets of `table inet dockfw` (`nft -j list set …`)
// into the shape both backends share.
import type { Family, Protocol } from '../../docker/snapshot.js';
import type { DropRecord } from '../../drops/record.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { CommandError, type CommandRunner } from '../command.js';
import { readRecordSets, type RecordSets } from '../record-sets.js';
import { RECORD_SETS, RECORD_TIMEOUT_SECONDS, TABLE_FAMILY, TABLE_NAME } from './names.js';

const PROTOCOLS: Readonly<Record<string | number, Protocol>> = {
  tcp: 'tcp',
  udp: 'udp',
  sctp: 'sctp',
  6: 'tcp',
  17: 'udp',
  132: 'sctp',
};

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function address(family: Family, value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const parsed = family === 4 ? parseIPv4(value) : parseIPv6(value);
  return parsed === undefined ? undefined : formatAddress(family, parsed);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

/** One family's records from `nft -j list set inet dockfw drops4|drops6`. */
export function parseRecordSet(
  json: string,
  family: Family,
): { records: DropRecord[]; capacity: number; timeout: number } {
  const root = record(JSON.parse(json) as unknown);
  const items = Array.isArray(root?.nftables) ? root.nftables : [];
  const records: DropRecord[] = [];
  let capacity = 0;
  let timeout = RECORD_TIMEOUT_SECONDS;
  for (const item of items) {
    const set = record(record(item)?.set);
    if (set?.name !== RECORD_SETS[family] || set.table !== TABLE_NAME || set.family !== TABLE_FAMILY)
      continue;
    capacity = count(set.size);
    if (typeof set.timeout === 'number') timeout = set.timeout;
    for (const raw of Array.isArray(set.elem) ? set.elem : []) {
      const elem = record(record(raw)?.elem);
      const parts = record(elem?.val)?.concat;
      if (!Array.isArray(parts) || parts.length !== 4) continue;
      const [dst, proto, port, src] = parts as unknown[];
      const destination = address(family, dst);
      const source = address(family, src);
      const protocol = typeof proto === 'string' || typeof proto === 'number' ? PROTOCOLS[proto] : undefined;
      if (!destination || !source || protocol === undefined) continue;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) continue;
      const counter = record(elem?.counter);
      records.push({
        family,
        destination,
        protocol,
        port,
        source,
        packets: count(counter?.packets),
        bytes: count(counter?.bytes),
        expiresSeconds: count(elem?.expires),
        timeoutSeconds: typeof elem?.timeout === 'number' ? elem.timeout : timeout,
        since: 'last',
      });
    }
  }
  return { records, capacity, timeout };
}

/** Both families' records; none when dockfw's table (or a record set) does not exist. */
export async function readNftRecords(run: CommandRunner): Promise<RecordSets> {
  return readRecordSets(async (family) => {
    try {
      const { stdout } = await run('nft', [
        '-j',
        'list',
        'set',
        TABLE_FAMILY,
        TABLE_NAME,
        RECORD_SETS[family],
      ]);
      return parseRecordSet(stdout, family);
    } catch (error) {
      if (error instanceof CommandError && !error.missing && /No such file or directory/.test(error.stderr))
        return 'absent';
      throw error;
    }
  });
}
