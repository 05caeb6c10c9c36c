// Inclusive address intervals of one family, merged, and their shortest exact
// spelling for a firewall rule: a CIDR block when the interval is one, else a range.
import type { Family } from './family.js';
import { FAMILY_BITS, formatAddress } from './ip.js';

export interface Interval {
  readonly start: bigint;
  readonly end: bigint;
}

/** Sorted, with overlapping and adjacent intervals joined. */
export function mergeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = [...intervals].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const merged: Interval[] = [];
  for (const next of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && next.start <= last.end + 1n) {
      if (next.end > last.end) merged[merged.length - 1] = { start: last.start, end: next.end };
    } else {
      merged.push(next);
    }
  }
  return merged;
}

/** Equal source lists: both `any`, or the same intervals in the same order. */
export function sameSources(a: 'any' | readonly Interval[], b: 'any' | readonly Interval[]): boolean {
  if (a === 'any' || b === 'any') return a === b;
  return a.length === b.length && a.every((x, i) => x.start === b[i]?.start && x.end === b[i]?.end);
}

export function contains(intervals: readonly Interval[], value: bigint): boolean {
  return intervals.some((i) => i.start <= value && value <= i.end);
}

/** The prefix length if the interval is exactly one CIDR block. */
export function cidrPrefix(family: Family, interval: Interval): number | undefined {
  const size = interval.end - interval.start + 1n;
  if ((size & (size - 1n)) !== 0n) return undefined; // not a power of two
  if ((interval.start & (size - 1n)) !== 0n) return undefined; // not aligned
  const hostBits = size.toString(2).length - 1;
  return FAMILY_BITS[family] - hostBits;
}

/** Text for one interval: `a.b.c.d/len` or `a-b` (what iptables-save prints). */
export type IntervalText =
  { readonly kind: 'cidr'; readonly text: string } | { readonly kind: 'range'; readonly text: string };

export function formatInterval(family: Family, interval: Interval): IntervalText {
  const prefix = cidrPrefix(family, interval);
  if (prefix !== undefined)
    return { kind: 'cidr', text: `${formatAddress(family, interval.start)}/${prefix}` };
  return {
    kind: 'range',
    text: `${formatAddress(family, interval.start)}-${formatAddress(family, interval.end)}`,
  };
}

export function cidrInterval(family: Family, base: bigint, prefix: number): Interval {
  const hostBits = BigInt(FAMILY_BITS[family] - prefix);
  const size = 1n << hostBits;
  return { start: base, end: base + size - 1n };
}
