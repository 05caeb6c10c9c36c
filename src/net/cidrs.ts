// Inclusive address intervals as the fewest CIDR blocks that cover exactly
// them: what a firewall that only knows prefixes (ipset's hash:net) can hold.
import type { Family } from './family.js';
import { FAMILY_BITS } from './ip.js';
import type { Interval } from './intervals.js';

export interface Cidr {
  readonly base: bigint;
  readonly prefix: number;
}

/**
 * The largest aligned block starting at each step, until the interval is
 * covered: at most 2 × (address bits) blocks per interval.
 */
export function intervalToCidrs(family: Family, interval: Interval): Cidr[] {
  const bits = FAMILY_BITS[family];
  const max = (1n << BigInt(bits)) - 1n;
  if (interval.start < 0n || interval.end > max || interval.start > interval.end)
    throw new RangeError(`not an IPv${family} interval: ${interval.start}-${interval.end}`);
  const out: Cidr[] = [];
  let start = interval.start;
  while (start <= interval.end) {
    // As large as start's alignment allows (its lowest set bit) and the rest of the interval fits.
    const aligned = start === 0n ? bits : bitLength(start & -start) - 1;
    const fits = bitLength(interval.end - start + 1n) - 1;
    const hostBits = Math.min(aligned, fits);
    out.push({ base: start, prefix: bits - hostBits });
    start += 1n << BigInt(hostBits);
  }
  return out;
}

function bitLength(value: bigint): number {
  return value.toString(2).length;
}

/** The interval a CIDR block covers. */
export function cidrRange(family: Family, cidr: Cidr): Interval {
  const size = 1n << BigInt(FAMILY_BITS[family] - cidr.prefix);
  return { start: cidr.base, end: cidr.base + size - 1n };
}
