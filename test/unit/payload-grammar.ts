/**
 * The grammar of every line the two renderers may emit, and what the lines
 * allow, read back from the payload text alone. The fuzz and injection tests
 * use it to check payloads built from hostile input; it throws plain Errors so
 * scripts/fuzz-long.ts can run the same checks outside vitest.
 *
 * Same patterns as the renderers' own tests (src/backends/*\/render.test.ts),
 * widened only where the renderer's input validation is wider than those
 * tests' random data (interface names may hold `+` anywhere; nft's `*` ends a
 * wildcard). Every address a pattern captures is parsed again, so nothing can
 * hide inside a pattern.
 */
import type { Family, Protocol } from '../../src/docker/snapshot.js';
import type { Interval } from '../../src/net/intervals.js';
import { parseIPv4, parseIPv6 } from '../../src/net/ip.js';
import { chainRules, publishedRules, ruleComment } from '../../src/backends/nftables/render.js';

/**
 * One "allow" the payload grants: packets to dst, proto, ports from..to, from
 * source. `on: 'container'` judges the container address and port after DNAT;
 * `on: 'host'` a published binding (host address, undefined for every local
 * address, and host port) before it.
 */
export interface PayloadAllow {
  readonly on: 'container' | 'host';
  readonly family: Family;
  readonly dst: bigint | undefined;
  readonly protocol: Protocol;
  readonly from: number;
  readonly to: number;
  /** `any` for an allow without source restriction. */
  readonly source: Interval | 'any';
}

const IFACE = '[A-Za-z0-9_.+-]{1,15}';
const V4 = '(?:[0-9]{1,3}\\.){3}[0-9]{1,3}';
const V6 = '[0-9a-f:.]{2,45}';
const IPT_PORTS = '(?<from>[1-9][0-9]{0,4})(?::(?<to>[1-9][0-9]{0,4}))?';
const NFT_PORTS = '(?<from>[1-9][0-9]{0,4})(?:-(?<to>[1-9][0-9]{0,4}))?';

function parseAs(family: Family, text: string, line: string): bigint {
  const value = family === 4 ? parseIPv4(text) : parseIPv6(text);
  if (value === undefined) throw new Error(`not an IPv${family} address in ${JSON.stringify(line)}`);
  return value;
}

function checkedPorts(from: string | undefined, to: string | undefined, line: string): [number, number] {
  const lo = Number(from);
  const hi = to === undefined ? lo : Number(to);
  if (!(lo >= 1 && hi <= 65535 && lo <= hi)) throw new Error(`bad ports in ${JSON.stringify(line)}`);
  return [lo, hi];
}

function cidr(family: Family, base: bigint, prefixText: string, line: string): Interval {
  const bits = family === 4 ? 32 : 128;
  const prefix = Number(prefixText);
  if (!(prefix >= 0 && prefix <= bits)) throw new Error(`bad prefix in ${JSON.stringify(line)}`);
  const size = 1n << BigInt(bits - prefix);
  if (base % size !== 0n) throw new Error(`host bits set in ${JSON.stringify(line)}`);
  return { start: base, end: base + size - 1n };
}

function lines(payload: string): string[] {
  if (payload === '') return [];
  if (!payload.endsWith('\n')) throw new Error('payload does not end with a newline');
  return payload.slice(0, -1).split('\n');
}

function outside(line: string, backend: string): Error {
  return new Error(`${backend} line outside the grammar: ${JSON.stringify(line)}`);
}

/** Checks an `iptables-restore --noflush` payload line by line; returns its container RETURN rules. */
export function iptablesAllows(payload: string, family: Family): PayloadAllow[] {
  const addr = family === 4 ? V4 : V6;
  const bits = family === 4 ? '32' : '128';
  const fixed = [
    /^\*filter$/,
    /^COMMIT$/,
    /^:DOCKFW(?:-IN)? - \[0:0\]$/,
    new RegExp(`^-A DOCKFW -i ${IFACE} -j (?:RETURN|DOCKFW-IN)$`),
    /^-A DOCKFW -j DOCKFW-IN$/,
    /^-A DOCKFW-IN -m conntrack --ctdir REPLY -j RETURN$/,
    new RegExp(
      `^-A DOCKFW-IN (?:-o ${IFACE} )?-m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP$`,
    ),
    /^-D (?:DOCKER-USER|FORWARD) -j DOCKFW$/,
    /^-I (?:DOCKER-USER|FORWARD) 1 -j DOCKFW$/,
    /^\*mangle$/,
    /^:DOCKFW-(?:PRE|PUBLISHED) - \[0:0\]$/,
    new RegExp(`^-A DOCKFW-PRE -i ${IFACE} -j (?:RETURN|DOCKFW-PUBLISHED)$`),
    /^-A DOCKFW-PRE -j DOCKFW-PUBLISHED$/,
    /^-A DOCKFW-PUBLISHED -m conntrack --ctdir REPLY -j RETURN$/,
    /^-A DOCKFW-PUBLISHED -m addrtype ! --dst-type LOCAL -j RETURN$/,
    /^-D PREROUTING -j DOCKFW-PRE$/,
    /^-I PREROUTING 1 -j DOCKFW-PRE$/,
  ];
  // DOCKFW-IN names the container address; DOCKFW-PUBLISHED the host address, or none for every one.
  const rule = new RegExp(
    `^-A (?<chain>DOCKFW-IN|DOCKFW-PUBLISHED) (?:-s (?<cidr>${addr})/(?<prefix>[0-9]{1,3}) )?(?:-d (?<dst>${addr})/${bits} )?-p (?<proto>tcp|udp|sctp)` +
      `(?: -m iprange --src-range (?<rfrom>${addr})-(?<rto>${addr}))? -m \\k<proto> --dport ${IPT_PORTS}` +
      ` -m comment --comment "dockfw [0-9a-f]{12}" -j (?<verdict>RETURN|DROP)$`,
  );
  const allows: PayloadAllow[] = [];
  for (const line of lines(payload)) {
    if (fixed.some((p) => p.test(line))) continue;
    const g = rule.exec(line)?.groups;
    if (g === undefined) throw outside(line, 'iptables');
    if (g.cidr !== undefined && g.rfrom !== undefined) throw outside(line, 'iptables');
    const on = g.chain === 'DOCKFW-IN' ? 'container' : 'host';
    if (on === 'container' && g.dst === undefined) throw outside(line, 'iptables');
    const dst = g.dst === undefined ? undefined : parseAs(family, g.dst, line);
    const [from, to] = checkedPorts(g.from, g.to, line);
    let source: Interval | 'any' = 'any';
    if (g.cidr !== undefined) source = cidr(family, parseAs(family, g.cidr, line), g.prefix ?? '', line);
    if (g.rfrom !== undefined) {
      source = { start: parseAs(family, g.rfrom, line), end: parseAs(family, g.rto ?? '', line) };
      if (source.start > source.end) throw new Error(`empty range in ${JSON.stringify(line)}`);
    }
    if (g.verdict === 'RETURN') {
      allows.push({ on, family, dst, protocol: g.proto as Protocol, from, to, source });
    } else if (source !== 'any') {
      throw new Error(`a DROP with a source: ${JSON.stringify(line)}`);
    }
  }
  return allows;
}

const NFT_FIXED: RegExp[] = [
  /^add table inet dockfw$/,
  /^delete table inet dockfw$/,
  /^table inet dockfw \{$/,
  /^\tset (?:bridges|dnatbridges|outside|allowed4|guarded4|allowed6|guarded6|bound4|boundallowed4|bound6|boundallowed6) \{$/,
  /^\t\ttype (?:ifname|ipv4_addr \. inet_proto \. inet_service(?: \. ipv4_addr)?|ipv6_addr \. inet_proto \. inet_service(?: \. ipv6_addr)?)$/,
  /^\t\tflags interval$/,
  /^\t\telements = \{$/,
  /^\t\t\t"[A-Za-z0-9_.+-]{0,15}\*?",?$/,
  /^\t\t\}$/,
  /^\t\}$/,
  /^\tchain forward \{$/,
  /^\t\ttype filter hook forward priority -10; policy accept;$/,
  /^\tchain published \{$/,
  /^\t\ttype filter hook prerouting priority -150; policy accept;$/,
  /^\}$/,
];
/** The base chain's rules are fixed texts: nothing else may appear among them. */
const NFT_RULES = new Set(
  [false, true]
    .flatMap((outsideConfigured) => [
      ...chainRules({ outsideConfigured }),
      ...chainRules({ outsideConfigured, bridgesUnknown: true }),
      ...publishedRules({ outsideConfigured }),
    ])
    .map((r) => `\t\t${r.text} comment "${ruleComment(r.role)}"`),
);

function nftElement(family: Family, withSource: boolean, on: PayloadAllow['on']): RegExp {
  const addr = family === 4 ? V4 : V6;
  const source = withSource ? ` \\. (?<s>${addr})(?:/(?<prefix>[0-9]{1,3})|-(?<e>${addr}))?` : '';
  // A binding on every local address is the whole family as an interval.
  const every = on === 'host' ? '(?<every>/0)?' : '';
  return new RegExp(`^(?<a>${addr})${every} \\. (?<proto>tcp|udp|sctp) \\. ${NFT_PORTS}${source}$`);
}

/** Checks one element of a judging set; returns the allow it grants, if any. */
function nftAllow(
  family: Family,
  allowed: boolean,
  on: PayloadAllow['on'],
  text: string,
  line: string,
): PayloadAllow | undefined {
  const g = nftElement(family, allowed, on).exec(text)?.groups;
  if (g === undefined) throw outside(line, 'nft');
  const base = parseAs(family, g.a ?? '', line);
  if (g.every !== undefined && base !== 0n) throw outside(line, 'nft');
  const dst = g.every === undefined ? base : undefined;
  const [from, to] = checkedPorts(g.from, g.to, line);
  if (!allowed) return undefined;
  const start = parseAs(family, g.s ?? '', line);
  let source: Interval = { start, end: start };
  if (g.prefix !== undefined) source = cidr(family, start, g.prefix, line);
  if (g.e !== undefined) source = { start, end: parseAs(family, g.e, line) };
  if (source.start > source.end) throw new Error(`empty range in ${JSON.stringify(line)}`);
  return { on, family, dst, protocol: g.proto as Protocol, from, to, source };
}

const SET_FAMILY: Readonly<Record<string, [Family, boolean, PayloadAllow['on']]>> = {
  allowed4: [4, true, 'container'],
  guarded4: [4, false, 'container'],
  allowed6: [6, true, 'container'],
  guarded6: [6, false, 'container'],
  boundallowed4: [4, true, 'host'],
  bound4: [4, false, 'host'],
  boundallowed6: [6, true, 'host'],
  bound6: [6, false, 'host'],
};

/** Checks a whole-table or element `nft -f -` payload; returns every allowed element. */
export function nftAllows(payload: string): PayloadAllow[] {
  const allows: PayloadAllow[] = [];
  let set: string | undefined;
  const add = (name: string | undefined, text: string, line: string, adding = true): void => {
    const kind = name === undefined ? undefined : SET_FAMILY[name];
    if (kind === undefined) {
      if (!/^"[A-Za-z0-9_.+-]{0,15}\*?"$/.test(text)) throw outside(line, 'nft');
      return;
    }
    const allow = nftAllow(kind[0], kind[1], kind[2], text, line);
    if (allow !== undefined && adding) allows.push(allow);
  };
  for (const line of lines(payload)) {
    const header = /^\tset (\w+) \{$/.exec(line);
    if (header !== null) set = header[1];
    const element = /^\t\t\t(.+?),?$/.exec(line);
    if (element !== null) {
      add(set, element[1] ?? '', line);
      continue;
    }
    if (NFT_RULES.has(line)) continue;
    const statement = /^(?:add|delete) element inet dockfw (\w+) \{ (.+) \}$/.exec(line);
    if (statement !== null) {
      const adding = line.startsWith('add ');
      for (const text of (statement[2] ?? '').split(', ')) add(statement[1], text, line, adding);
      continue;
    }
    if (!NFT_FIXED.some((p) => p.test(line))) throw outside(line, 'nft');
  }
  return allows;
}
