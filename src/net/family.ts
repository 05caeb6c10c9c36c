// The two vocabularies every layer shares: address family and transport protocol.

export type Family = 4 | 6;
export type Protocol = 'tcp' | 'udp' | 'sctp';
