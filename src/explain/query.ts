// `dockfw explain SOURCE TARGET[/PROTO]`: the two arguments, parsed (pure).
import type { Family, Protocol } from '../docker/snapshot.js';
import { formatAddress, isIPv4Mapped, parseIPv4, parseIPv6 } from '../net/ip.js';
import { protocolNamed } from '../net/family.js';

/** An address of one family, canonical. */
export interface QueryAddress {
  readonly family: Family;
  readonly value: bigint;
  readonly text: string;
}

/** `HOST:PORT`: a host (or container) address and a port on it. */
export interface AddressTarget {
  readonly kind: 'address';
  readonly address: QueryAddress;
  readonly port: number;
  readonly protocol: Protocol;
}

/** `CONTAINER:PORT`: a container name or id prefix and one of its container ports. */
export interface ContainerTarget {
  readonly kind: 'container';
  readonly container: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export type Target = AddressTarget | ContainerTarget;

export interface Query {
  readonly source: QueryAddress;
  readonly target: Target;
}

/** Thrown for arguments that are not SOURCE TARGET[/PROTO]; the CLI exits 2. */
export class QueryError extends Error {
  override readonly name = 'QueryError';
}

const PORT = /^[1-9][0-9]{0,4}$/;
/** Docker's container names (and hex id prefixes). */
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function address(text: string): QueryAddress | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, value: v4, text: formatAddress(4, v4) };
  const v6 = parseIPv6(text);
  if (v6 !== undefined && !isIPv4Mapped(v6)) return { family: 6, value: v6, text: formatAddress(6, v6) };
  return undefined;
}

export function parseSource(text: string): QueryAddress {
  const parsed = address(text);
  if (parsed === undefined) {
    throw new QueryError(
      `SOURCE must be an IPv4 or IPv6 address (no brackets, no prefix length), not ${JSON.stringify(text)}`,
    );
  }
  return parsed;
}

function parsePort(text: string, whole: string): number {
  const port = PORT.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535))
    throw new QueryError(`port must be 1-65535 in TARGET ${JSON.stringify(whole)}`);
  return port;
}

/** `HOST:PORT`, `[IPV6]:PORT` or `CONTAINER:PORT`, each with an optional `/tcp|udp|sctp`. */
export function parseTarget(text: string): Target {
  let rest = text;
  let protocol: Protocol = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const named = rest.slice(slash + 1);
    const known = protocolNamed(named);
    if (known === undefined)
      throw new QueryError(`protocol must be tcp, udp or sctp in TARGET ${JSON.stringify(text)}`);
    protocol = known;
    rest = rest.slice(0, slash);
  }
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(rest);
  if (bracketed) {
    const host = address(bracketed[1] ?? '');
    if (host?.family !== 6)
      throw new QueryError(
        `[${bracketed[1] ?? ''}] is not an IPv6 address in TARGET ${JSON.stringify(text)}`,
      );
    return { kind: 'address', address: host, port: parsePort(bracketed[2] ?? '', text), protocol };
  }
  const colon = rest.lastIndexOf(':');
  if (colon < 0)
    throw new QueryError(`TARGET must be HOST:PORT or CONTAINER:PORT, not ${JSON.stringify(text)}`);
  const host = rest.slice(0, colon);
  const port = parsePort(rest.slice(colon + 1), text);
  if (host.includes(':'))
    throw new QueryError(`write an IPv6 TARGET as [ADDRESS]:PORT, not ${JSON.stringify(text)}`);
  const hostAddress = address(host);
  if (hostAddress !== undefined) return { kind: 'address', address: hostAddress, port, protocol };
  if (!CONTAINER_NAME.test(host))
    throw new QueryError(`${JSON.stringify(host)} is neither an address nor a container name`);
  return { kind: 'container', container: host, port, protocol };
}

export function parseQuery(source: string, target: string): Query {
  const query = { source: parseSource(source), target: parseTarget(target) };
  if (query.target.kind === 'address' && query.target.address.family !== query.source.family) {
    throw new QueryError(
      `SOURCE ${query.source.text} is IPv${query.source.family} and TARGET ${query.target.address.text} is IPv${query.target.address.family}: a connection has one family`,
    );
  }
  return query;
}

/** `203.0.113.1:8443/tcp`, `[2001:db8::1]:8443/tcp`, `web:443/tcp`. */
export function formatTarget(target: Target): string {
  const host =
    target.kind === 'container'
      ? target.container
      : target.address.family === 6
        ? `[${target.address.text}]`
        : target.address.text;
  return `${host}:${target.port}/${target.protocol}`;
}
