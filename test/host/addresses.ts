/**
 * Documentation addresses of the outside world. The engine's namespace holds the
 * host side ("ext0"); the client namespace holds several sources per family so a
 * test can tell an allowed source from a blocked one.
 */
export const EXTERNAL_INTERFACE = 'ext0';

export const HOST_ADDRESSES = {
  v4: ['203.0.113.1', '198.51.100.1'],
  v6: ['2001:db8:1::1'],
} as const;

export const CLIENT_ADDRESSES = {
  v4: ['203.0.113.10', '203.0.113.11', '203.0.113.12', '203.0.113.13', '198.51.100.10', '198.51.100.11'],
  v6: ['2001:db8:1::10', '2001:db8:1::11', '2001:db8:1::12', '2001:db8:1::13'],
} as const;

/** Prefix length of every outside subnet above, by family. */
export const PREFIX = { v4: 24, v6: 64 } as const;

export function isIPv6(address: string): boolean {
  return address.includes(':');
}
