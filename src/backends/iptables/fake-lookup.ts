// How the kernel looks a packet up in dockfw's sets, for unit tests: each
// `-m set --match-set NAME FLAGS -j TARGET` rule of a chain in order, the
// element's parts compared with the packet's address, proto:port and source
// as FLAGS say (an address part equal, a net part containing it).
import type { Family, Protocol } from '../../docker/snapshot.js';
import { FAMILY_BITS, parseIPv4, parseIPv6 } from '../../net/ip.js';
import { SET_TYPES, type SetRole } from './sets.js';

export interface Packet {
  readonly family: Family;
  readonly source: bigint;
  readonly destination: bigint;
  readonly protocol: Protocol;
  readonly port: number;
}

function net(family: Family, text: string): { base: bigint; size: bigint } | undefined {
  const [address = '', prefix] = text.split('/');
  const base = family === 4 ? parseIPv4(address) : parseIPv6(address);
  if (base === undefined) return undefined;
  const bits = prefix === undefined ? FAMILY_BITS[family] : Number(prefix);
  return { base, size: 1n << BigInt(FAMILY_BITS[family] - bits) };
}

/** Whether one element (canonical text of a set of `type`) matches the packet, looked up with `flags`. */
export function elementMatches(type: string, flags: string, element: string, packet: Packet): boolean {
  const parts = element.split(',');
  const dims = flags.split(',');
  const kinds = type.replace(/^hash:/, '').split(',');
  if (parts.length !== kinds.length || dims.length !== kinds.length) return false;
  return kinds.every((kind, i) => {
    const part = parts[i] ?? '';
    if (kind === 'port') return part === `${packet.protocol}:${packet.port}`;
    const value = dims[i] === 'src' ? packet.source : packet.destination;
    const n = net(packet.family, part);
    return n !== undefined && value >= n.base && value < n.base + n.size;
  });
}

/** The target of the first set rule of `chain` in `payload` the packet matches, else 'no rule'. */
export function walkSetRules(
  payload: string,
  chain: string,
  sets: (name: string) => { role: SetRole; elements: Iterable<string> } | undefined,
  packet: Packet,
): string {
  const rule = new RegExp(`^-A ${chain} -m set --match-set (\\S+) (\\S+) -j (\\S+)` + '$');
  for (const line of payload.split('\n')) {
    const m = rule.exec(line);
    if (m === null) continue;
    const [, name = '', flags = '', target = ''] = m;
    const set = sets(name);
    if (set === undefined) continue;
    for (const element of set.elements)
      if (elementMatches(SET_TYPES[set.role], flags, element, packet)) return target;
  }
  return 'no rule';
}
