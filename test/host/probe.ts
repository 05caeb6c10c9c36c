import { isIPv6 } from './addresses.js';
import { inNetns } from './netns.js';

export type ProbeOutcome = 'reached' | 'blocked';
export type Protocol = 'tcp' | 'udp';

export interface ProbeOptions {
  /** Source address, one of CLIENT_ADDRESSES. */
  from: string;
  /** Destination: a host address (published port) or a container address. */
  to: string;
  port: number;
  proto?: Protocol;
  /**
   * How long a blocked probe waits: for TCP the connect timeout (default 1 s; a
   * connected probe gets 4 s more for the answer), for UDP the whole budget of
   * its attempts (default 1.5 s).
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1_000;
const DEFAULT_UDP_TIMEOUT_MS = 1_500;
/** Once connected, a slow answer (a loaded machine) is still an answer. */
const ANSWER_GRACE_S = 4;

function bracketed(address: string): string {
  return isIPv6(address) ? `[${address}]` : address;
}

/** curl arguments that print only the HTTP status of GET http://to:port/. */
export function httpProbeArgs(to: string, port: number, timeoutMs = DEFAULT_TIMEOUT_MS): string[] {
  const seconds = timeoutMs / 1000;
  return [
    '-sS',
    '-g',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '--connect-timeout',
    seconds.toFixed(3),
    '-m',
    (seconds + ANSWER_GRACE_S).toFixed(3),
    `http://${bracketed(to)}:${port}/`,
  ];
}

/**
 * TCP counts as reached only when the test image's httpd answers with 200, UDP
 * only when the container's responder sends a datagram back. Anything else
 * (timeout, refused, reset) counts as blocked.
 */
export async function probeFrom(clientNs: string, options: ProbeOptions): Promise<ProbeOutcome> {
  if ((options.proto ?? 'tcp') === 'tcp') {
    const result = await inNetns(clientNs, 'curl', [
      '--interface',
      options.from,
      ...httpProbeArgs(options.to, options.port, options.timeoutMs),
    ]);
    return result.stdout.trim() === '200' ? 'reached' : 'blocked';
  }
  return probeUdp(clientNs, options);
}

/**
 * socat's forking UDP server now and then loses one of several datagrams that
 * arrive at once, so a UDP probe tries a few times within its time budget.
 */
async function probeUdp(clientNs: string, options: ProbeOptions): Promise<ProbeOutcome> {
  const attempts = 3;
  const perAttemptS = ((options.timeoutMs ?? DEFAULT_UDP_TIMEOUT_MS) / attempts / 1000).toFixed(3);
  const family = isIPv6(options.to) ? 'UDP6' : 'UDP4';
  for (let attempt = 0; attempt < attempts; attempt++) {
    const result = await inNetns(
      clientNs,
      'socat',
      [
        '-t',
        perAttemptS,
        '-T',
        perAttemptS,
        '-',
        `${family}:${bracketed(options.to)}:${options.port},bind=${bracketed(options.from)}`,
      ],
      {},
      'probe\n',
    );
    if (result.stdout.trim() !== '') return 'reached';
  }
  return 'blocked';
}
