// Container ports a compose service publishes (`ports:`, short and long syntax), so
// `dockfw check` can warn about port labels that name a host port by mistake.
import type { Protocol } from '../docker/snapshot.js';

export interface PublishedRange {
  readonly from: number;
  readonly to: number;
  readonly protocol: Protocol;
}

const CONTAINER_PART = /^([1-9][0-9]{0,4})(?:-([1-9][0-9]{0,4}))?(?:\/(tcp|udp|sctp))?$/;

function range(text: string): PublishedRange | undefined {
  const match = CONTAINER_PART.exec(text);
  if (match === null) return undefined;
  const from = Number(match[1]);
  const to = match[2] === undefined ? from : Number(match[2]);
  if (to > 65535 || from > to) return undefined;
  return { from, to, protocol: (match[3] ?? 'tcp') as Protocol };
}

/** One `ports:` entry; undefined if it cannot be read (variables, odd syntax). */
function entry(port: unknown): PublishedRange | undefined {
  if (typeof port === 'number') return range(String(port));
  if (typeof port === 'string') {
    // [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]; the container part is after the last colon.
    return range(port.slice(port.lastIndexOf(':') + 1));
  }
  if (typeof port === 'object' && port !== null) {
    const { target, protocol } = port as { target?: unknown; protocol?: unknown };
    if (typeof target !== 'number' && typeof target !== 'string') return undefined;
    if (protocol !== undefined && typeof protocol !== 'string') return undefined;
    const proto = protocol === undefined ? '' : `/${protocol}`;
    return range(`${String(target)}${proto}`);
  }
  return undefined;
}

/** Published container port ranges, or undefined when any entry is unreadable. */
export function composePublished(ports: unknown): PublishedRange[] | undefined {
  if (ports === undefined || ports === null) return [];
  if (!Array.isArray(ports)) return undefined;
  const ranges: PublishedRange[] = [];
  for (const port of ports) {
    const parsed = entry(port);
    if (parsed === undefined) return undefined;
    ranges.push(parsed);
  }
  return ranges;
}
