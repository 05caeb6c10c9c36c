// The one place that runs the conntrack tool: list the tracked connections of a
// family, delete one by its original tuple. Argument arrays, never a shell; the
// same runner (timeout, missing-binary handling) as iptables and nft.
import { protocolNamed, type Family } from '../net/family.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../net/ip.js';
import type { Flow } from '../policy/judge-flow.js';
import { CommandError, commandRunner, type CommandRunner } from './command.js';

export const runConntrack: CommandRunner = commandRunner('install conntrack (conntrack-tools)');

const FAMILY_NAMES: Readonly<Record<Family, string>> = { 4: 'ipv4', 6: 'ipv6' };
const CLOSED_TCP: ReadonlySet<string> = new Set(['TIME_WAIT', 'CLOSE']);

/** The connection table, as the revocation needs it. */
export interface ConnectionTable {
  list(family: Family): Promise<Flow[]>;
  /** Resolves false when the entry was already gone. */
  delete(flow: Flow): Promise<boolean>;
}

function parse(family: Family, text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  return family === 4 ? parseIPv4(text) : parseIPv6(text);
}

function port(text: string | undefined): number | undefined {
  const value = Number(text);
  return text !== undefined && /^\d{1,5}$/.test(text) && value <= 65535 ? value : undefined;
}

/**
 * `conntrack -L -f FAMILY -o extended` lines → flows: tcp, udp and sctp of that
 * family, outside conntrack zones (dockfw's rules know no zones). The first
 * src/dst/sport/dport are the original direction, the second the reply.
 */
export function parseConntrackList(stdout: string, family: Family): Flow[] {
  const flows: Flow[] = [];
  for (const line of stdout.split('\n')) {
    const tokens = line.trim().split(/\s+/);
    const protocol = protocolNamed(tokens[2]);
    if (tokens[0] !== FAMILY_NAMES[family] || protocol === undefined) continue;
    // A closed TCP connection carries nothing more, and a new SYN on its entry is
    // tracked as a new connection (the rules judge it): nothing to cut.
    if (protocol === 'tcp' && CLOSED_TCP.has(tokens[5] ?? '')) continue;
    const fields = new Map<string, string[]>();
    for (const token of tokens) {
      const at = token.indexOf('=');
      if (at > 0)
        fields.set(token.slice(0, at), [...(fields.get(token.slice(0, at)) ?? []), token.slice(at + 1)]);
    }
    if (fields.has('zone')) continue;
    const [source, replySource] = (fields.get('src') ?? []).map((t) => parse(family, t));
    const [destination] = (fields.get('dst') ?? []).map((t) => parse(family, t));
    const [sourcePort, replySourcePort] = (fields.get('sport') ?? []).map(port);
    const [destinationPort] = (fields.get('dport') ?? []).map(port);
    if (
      source === undefined ||
      destination === undefined ||
      replySource === undefined ||
      sourcePort === undefined ||
      destinationPort === undefined ||
      replySourcePort === undefined
    )
      continue;
    flows.push({
      family,
      protocol,
      source,
      sourcePort,
      destination,
      destinationPort,
      replySource,
      replySourcePort,
    });
  }
  return flows;
}

/** The arguments deleting exactly the entry with this original tuple. */
export function deleteArgs(flow: Flow): string[] {
  return [
    '-D',
    '-f',
    FAMILY_NAMES[flow.family],
    '-p',
    flow.protocol,
    '--orig-src',
    formatAddress(flow.family, flow.source),
    '--orig-dst',
    formatAddress(flow.family, flow.destination),
    '--orig-port-src',
    String(flow.sourcePort),
    '--orig-port-dst',
    String(flow.destinationPort),
  ];
}

export function listArgs(family: Family): string[] {
  return ['-L', '-f', FAMILY_NAMES[family], '-o', 'extended'];
}

/** conntrack exits 1 when a delete matched nothing (the connection ended in between). */
const NOTHING_DELETED = /0 flow entries have been deleted/;

export class Conntrack implements ConnectionTable {
  constructor(private readonly run: CommandRunner = runConntrack) {}

  async list(family: Family): Promise<Flow[]> {
    const { stdout } = await this.run('conntrack', listArgs(family));
    return parseConntrackList(stdout, family);
  }

  async delete(flow: Flow): Promise<boolean> {
    try {
      await this.run('conntrack', deleteArgs(flow));
      return true;
    } catch (error) {
      if (error instanceof CommandError && !error.missing && NOTHING_DELETED.test(error.stderr)) return false;
      throw error;
    }
  }
}
