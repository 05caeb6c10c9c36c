// The two vocabularies every layer shares: address family and transport protocol.

export type Family = 4 | 6;
export type Protocol = 'tcp' | 'udp' | 'sctp';

export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

/** The protocol a text names, as the one shared string (kept objects hold no copy), or undefined. */
export function protocolNamed(text: string | undefined): Protocol | undefined {
  return PROTOCOLS.find((p) => p === text);
}
