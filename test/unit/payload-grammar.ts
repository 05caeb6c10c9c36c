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
import { chainRules, publishedRules, recordRules, ruleComment } from '../../src/backends/nftables/render.js';
import { renderPreroutingPayload, renderSyncPayload } from '../../src/backends/iptables/render.js';
import { familySets, renderSetsFull } from '../../src/backends/iptables/sets.js';
import type { DesiredState } from '../../src/policy/desired.js';

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

/**
 * The iptables backend's write for one family as a sync from nothing makes it:
 * the `ipset restore` batch that fills the sets, then the chains' payload.
 */
export function iptablesFamilyPayload(
  desired: DesiredState,
  family: Family,
  jumps: readonly number[] = [],
  parent = 'DOCKER-USER',
): string {
  return (
    renderSetsFull(family, familySets(desired, family), new Set(), new Set()) +
    renderPreroutingPayload(desired, family, { parent: 'PREROUTING', positions: jumps }) +
    renderSyncPayload(desired, family, { parent, positions: jumps })
  );
}

const ROLES = '(?:bound|boundip|boundany|allowed|guarded)';

/** One admitting element: what it lets in. */
function setAllow(family: Family, role: string, text: string, line: string): PayloadAllow | undefined {
  const addr = family === 4 ? V4 : V6;
  const net = `(?<a>${addr})(?:/(?<ap>[0-9]{1,3}))?`;
  const service = '(?<proto>tcp|udp|sctp):(?<port>[1-9][0-9]{0,4})';
  const source = `(?<s>${addr})(?:/(?<sp>[0-9]{1,3}))?`;
  const shapes: Record<string, RegExp> = {
    bound: new RegExp(`^${net},${service}$`),
    guarded: new RegExp(`^(?<a>${addr}),${service}$`),
    allowed: new RegExp(`^(?<a>${addr}),${service},${source}$`),
    boundip: new RegExp(`^(?<a>${addr}),${service},${source}$`),
    boundany: new RegExp(`^${source},${service}$`),
  };
  const g = shapes[role]?.exec(text)?.groups;
  if (g === undefined) throw outside(line, 'ipset');
  const [port] = checkedPorts(g.port, undefined, line);
  const bits = family === 4 ? '32' : '128';
  if (g.a !== undefined) cidr(family, parseAs(family, g.a, line), g.ap ?? bits, line);
  if (role === 'bound' || role === 'guarded') return undefined;
  const from = parseAs(family, g.s ?? '', line);
  const src = cidr(family, from, g.sp ?? bits, line);
  const dst = role === 'boundany' ? undefined : parseAs(family, g.a ?? '', line);
  const on = role === 'allowed' ? 'container' : 'host';
  return { on, family, dst, protocol: g.proto as Protocol, from: port, to: port, source: src };
}

/**
 * Checks an iptables backend payload line by line (an `ipset restore` batch,
 * an `iptables-restore --noflush` payload, or both back to back); returns what
 * its admitting set elements let in. The chains hold only fixed rules.
 */
export function iptablesAllows(payload: string, family: Family): PayloadAllow[] {
  const fixed = [
    /^\*filter$/,
    /^COMMIT$/,
    /^:DOCKFW(?:-IN|-DROP)? - \[0:0\]$/,
    // The drop chain of either table: note the drop in this family's record ipset, then drop.
    new RegExp(`^-A DOCKFW-DROP -m set --match-set dockfw-drops${family} dst,dst,src -j DROP$`),
    new RegExp(`^-A DOCKFW-DROP -j SET --add-set dockfw-drops${family} dst,dst,src$`),
    /^-A DOCKFW-DROP -j DROP$/,
    new RegExp(`^-A DOCKFW -i ${IFACE} -j (?:RETURN|DOCKFW-IN)$`),
    /^-A DOCKFW -j DOCKFW-IN$/,
    /^-A DOCKFW-(?:IN|PUBLISHED) -m conntrack --ctdir REPLY -j RETURN$/,
    /^-A DOCKFW-(?:IN|PUBLISHED) -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN$/,
    new RegExp(`^-A DOCKFW-IN -m set --match-set dockfw-allowed${family} dst,dst,src -j RETURN$`),
    new RegExp(`^-A DOCKFW-IN -m set --match-set dockfw-guarded${family} dst,dst -j DOCKFW-DROP$`),
    new RegExp(`^-A DOCKFW-PUBLISHED -m set --match-set dockfw-boundip${family} dst,dst,src -j RETURN$`),
    new RegExp(`^-A DOCKFW-PUBLISHED -m set --match-set dockfw-boundany${family} src,dst -j RETURN$`),
    new RegExp(`^-A DOCKFW-PUBLISHED -m set --match-set dockfw-bound${family} dst,dst -j DOCKFW-DROP$`),
    new RegExp(
      `^-A DOCKFW-IN (?:-o ${IFACE} )?-m conntrack --ctstate DNAT -m comment --comment "dockfw catch-all" -j DROP$`,
    ),
    /^-D (?:DOCKER-USER|FORWARD) -j DOCKFW$/,
    /^-I (?:DOCKER-USER|FORWARD) 1 -j DOCKFW$/,
    /^\*mangle$/,
    /^:DOCKFW-(?:PRE|PUBLISHED|DROP) - \[0:0\]$/,
    new RegExp(`^-A DOCKFW-PRE -i ${IFACE} -j (?:RETURN|DOCKFW-PUBLISHED)$`),
    /^-A DOCKFW-PRE -j DOCKFW-PUBLISHED$/,
    /^-A DOCKFW-PUBLISHED -m addrtype --dst-type UNICAST -j RETURN$/,
    /^-A DOCKFW-PUBLISHED ! -d ff00::\/8 -m addrtype ! --dst-type LOCAL -m addrtype ! --dst-type ANYCAST -j RETURN$/,
    /^-D PREROUTING -j DOCKFW-PRE$/,
    /^-I PREROUTING 1 -j DOCKFW-PRE$/,
    // The ipset batch: dockfw's own sets of this family (and their temporaries) only.
    new RegExp(
      `^create dockfw-${ROLES}${family}(?:-t)? hash:(?:net,port|ip,port,net|ip,port) family ${family === 4 ? 'inet' : 'inet6'} maxelem [1-9][0-9]{0,7}$`,
    ),
    new RegExp(`^destroy dockfw-${ROLES}${family}-t$`),
    new RegExp(`^swap dockfw-(?<r>${ROLES})${family}-t dockfw-\\k<r>${family}$`),
  ];
  const element = new RegExp(
    `^(?<verb>add|del)(?: -exist)? dockfw-(?<role>${ROLES})${family}(?:-t)? (?<e>\\S+)$`,
  );
  const allows: PayloadAllow[] = [];
  for (const line of lines(payload)) {
    if (fixed.some((p) => p.test(line))) continue;
    const g = element.exec(line)?.groups;
    if (g === undefined) throw outside(line, 'iptables');
    const allow = setAllow(family, g.role ?? '', g.e ?? '', line);
    if (allow !== undefined && g.verb === 'add') allows.push(allow);
  }
  return allows;
}

const NFT_FIXED: RegExp[] = [
  /^add table inet dockfw$/,
  /^delete table inet dockfw$/,
  /^table inet dockfw \{$/,
  /^\tset (?:bridges|dnatbridges|outside|allowed4|guarded4|allowed6|guarded6|bound4|boundallowed4|bound6|boundallowed6) \{$/,
  /^\t\ttype (?:ifname|ipv4_addr \. inet_proto \. inet_service(?: \. ipv4_addr)?|ipv6_addr \. inet_proto \. inet_service(?: \. ipv6_addr)?)$/,
  // The binding sets: host port first.
  /^\t\ttype inet_service \. inet_proto \. (?:ipv4_addr(?: \. ipv4_addr)?|ipv6_addr(?: \. ipv6_addr)?)$/,
  /^\t\tflags interval$/,
  // The drop record sets: declared only, never given elements by a payload.
  /^\tset drops[46] \{$/,
  /^\t\tsize [1-9][0-9]{0,6}$/,
  /^\t\tflags dynamic,timeout$/,
  /^\t\ttimeout 3600s$/,
  /^\t\tcounter$/,
  /^\tchain drop[46] \{$/,
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
/** The chains' rules are fixed texts: nothing else may appear among them. */
const NFT_RULES = new Set(
  [false, true]
    .flatMap((outsideConfigured) =>
      [0, 1].flatMap((records) => [
        ...chainRules({ outsideConfigured, records }),
        ...chainRules({ outsideConfigured, records, bridgesUnknown: true }),
        ...publishedRules({ outsideConfigured, records }),
      ]),
    )
    .concat(recordRules(4), recordRules(6))
    .map((r) => `\t\t${r.text} comment "${ruleComment(r.role)}"`),
);

function nftElement(family: Family, withSource: boolean, on: PayloadAllow['on']): RegExp {
  const addr = family === 4 ? V4 : V6;
  const source = withSource ? ` \\. (?<s>${addr})(?:/(?<prefix>[0-9]{1,3})|-(?<e>${addr}))?` : '';
  // A binding on every local address is the whole family as an interval.
  if (on === 'host')
    return new RegExp(`^${NFT_PORTS} \\. (?<proto>tcp|udp|sctp) \\. (?<a>${addr})(?<every>/0)?${source}$`);
  return new RegExp(`^(?<a>${addr}) \\. (?<proto>tcp|udp|sctp) \\. ${NFT_PORTS}${source}$`);
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
    // Only the interface sets hold names; the drop record sets never get elements from a payload.
    if (kind === undefined && !['bridges', 'dnatbridges', 'outside'].includes(name ?? ''))
      throw outside(line, 'nft');
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
