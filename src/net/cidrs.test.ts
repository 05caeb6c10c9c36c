import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cidrRange, intervalToCidrs } from './cidrs.js';
import { mergeIntervals } from './intervals.js';

describe('intervalToCidrs', () => {
  it('covers exactly the interval, with aligned, disjoint blocks in order', () => {
    for (const family of [4, 6] as const) {
      const bits = family === 4 ? 32 : 128;
      const address = fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n });
      fc.assert(
        fc.property(address, address, (a, b) => {
          const interval = a <= b ? { start: a, end: b } : { start: b, end: a };
          const cidrs = intervalToCidrs(family, interval);
          const ranges = cidrs.map((c) => cidrRange(family, c));
          // Contiguous from start to end, so nothing outside and nothing missed.
          expect(ranges[0]?.start).toBe(interval.start);
          expect(ranges[ranges.length - 1]?.end).toBe(interval.end);
          ranges.forEach((r, i) => {
            if (i > 0) expect(r.start).toBe((ranges[i - 1]?.end ?? 0n) + 1n);
          });
          for (const c of cidrs) {
            const size = 1n << BigInt(bits - c.prefix);
            expect(c.base & (size - 1n)).toBe(0n);
          }
          expect(cidrs.length).toBeLessThanOrEqual(2 * bits);
          // Adjacent blocks that could be one are not both there: merging gives the interval back.
          expect(mergeIntervals(ranges)).toEqual([interval]);
        }),
        { numRuns: 150 },
      );
    }
  });

  it('spells common intervals as the blocks one would write', () => {
    expect(intervalToCidrs(4, { start: 0n, end: (1n << 32n) - 1n })).toEqual([{ base: 0n, prefix: 0 }]);
    expect(intervalToCidrs(4, { start: 10n, end: 10n })).toEqual([{ base: 10n, prefix: 32 }]);
    // 1.2.3.1-1.2.3.6: .1/32 .2/31 .4/31 .6/32
    const base = (1n << 24n) + (2n << 16n) + (3n << 8n);
    expect(intervalToCidrs(4, { start: base + 1n, end: base + 6n })).toEqual([
      { base: base + 1n, prefix: 32 },
      { base: base + 2n, prefix: 31 },
      { base: base + 4n, prefix: 31 },
      { base: base + 6n, prefix: 32 },
    ]);
  });

  it('refuses what is not an interval of the family', () => {
    expect(() => intervalToCidrs(4, { start: 2n, end: 1n })).toThrow(RangeError);
    expect(() => intervalToCidrs(4, { start: 0n, end: 1n << 32n })).toThrow(RangeError);
  });
});
