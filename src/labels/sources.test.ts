import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Family } from '../net/family.js';
import { contains, formatInterval } from '../net/intervals.js';
import { formatAddress } from '../net/ip.js';
import { MAX_VALUE_LENGTH, parseSources, type SourceSet } from './sources.js';

/** The merged set as text, v4 then v6, for readable expectations. */
function describeSet(set: SourceSet): string {
  if (set.any) return 'any';
  const parts = [
    ...set.v4.map((i) => formatInterval(4, i).text),
    ...set.v6.map((i) => formatInterval(6, i).text),
  ];
  return parts.length === 0 ? 'none' : parts.join(' ');
}

function accepted(value: string): string {
  const result = parseSources(value);
  if (!result.ok) throw new Error(`rejected ${JSON.stringify(value)}: ${result.message}`);
  return describeSet(result.value);
}

function rejected(value: string): string {
  const result = parseSources(value);
  if (result.ok) throw new Error(`accepted ${JSON.stringify(value)} as ${describeSet(result.value)}`);
  return result.message;
}

describe('valid sources', () => {
  it.each([
    ['any', 'any'],
    ['none', 'none'],
    ['203.0.113.7', '203.0.113.7/32'],
    ['203.0.113.0/24', '203.0.113.0/24'],
    [' 203.0.113.0/24 ,\t198.51.100.1 ', '198.51.100.1/32 203.0.113.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['2001:DB8:0:0::1', '2001:db8::1/128'],
    ['::/0', '::/0'],
    // ranges: CIDR when exact, else a range
    ['203.0.113.0-203.0.113.255', '203.0.113.0/24'],
    ['203.0.113.5-203.0.113.9', '203.0.113.5-203.0.113.9'],
    ['203.0.113.5-203.0.113.5', '203.0.113.5/32'],
    ['2001:db8::1-2001:db8::ff', '2001:db8::1-2001:db8::ff'],
    // overlapping and adjacent items merge
    ['203.0.113.0/25, 203.0.113.128/25', '203.0.113.0/24'],
    ['203.0.113.0/24, 203.0.113.9', '203.0.113.0/24'],
    ['203.0.113.1-203.0.113.3, 203.0.113.2-203.0.113.6', '203.0.113.1-203.0.113.6'],
    ['198.51.100.1, 198.51.100.1', '198.51.100.1/32'],
    // both families, sorted numerically
    ['2001:db8::1, 203.0.113.1, 198.51.100.0/24', '198.51.100.0/24 203.0.113.1/32 2001:db8::1/128'],
    // any wins over everything else
    ['203.0.113.1, any', 'any'],
    ['any, any', 'any'],
    ['64:ff9b::203.0.113.1', '64:ff9b::cb00:7101/128'],
  ])('%j → %s', (value, expected) => {
    expect(accepted(value)).toBe(expected);
  });
});

describe('invalid sources', () => {
  it.each([
    ['', 'empty value (write none to close)'],
    ['   ', 'empty value (write none to close)'],
    ['203.0.113.1,', 'empty item between commas'],
    ['203.0.113.1,,198.51.100.1', 'empty item between commas'],
    ['none, 203.0.113.1', 'none cannot be combined with other sources'],
    ['none, any', 'none cannot be combined with other sources'],
    ['none,none', 'none cannot be combined with other sources'],
    ['10.0.0.0/33', '"10.0.0.0/33": prefix length must be 0-32'],
    ['2001:db8::/129', '"2001:db8::/129": prefix length must be 0-128'],
    ['10.0.0.0/08', '"10.0.0.0/08": prefix length must be 0-32'],
    ['10.0.0.0/', '"10.0.0.0/": prefix length must be 0-32'],
    ['10.0.0.0/-1', '"10.0.0.0/-1": prefix length must be 0-32'],
    ['10.0.0.1/8', '"10.0.0.1/8": host bits set (address is not the start of a /8 block)'],
    ['2001:db8::1/32', '"2001:db8::1/32": host bits set (address is not the start of a /32 block)'],
    ['203.0.113.9-203.0.113.1', '"203.0.113.9-203.0.113.1": range start is after its end'],
    ['203.0.113.1-2001:db8::1', '"203.0.113.1-2001:db8::1": range mixes IPv4 and IPv6'],
    [
      '203.0.113.1-203.0.113.2-203.0.113.3',
      '"203.0.113.1-203.0.113.2-203.0.113.3": not an IPv4/IPv6 address, CIDR block, range, any or none',
    ],
    ['203.0.113.0/24-203.0.113.255', '"203.0.113.0/24-203.0.113.255": prefix length must be 0-32'],
    ['::ffff:203.0.113.1', '"::ffff:203.0.113.1": IPv4-mapped IPv6 address; write the IPv4 address instead'],
    ['::ffff:0:0/96', '"::ffff:0:0/96": IPv4-mapped IPv6 address; write the IPv4 address instead'],
    ['fe80::1%eth0', '"fe80::1%eth0": zone ids (%…) are not allowed'],
    ['ANY', '"ANY": not an IPv4/IPv6 address, CIDR block, range, any or none'],
    ['example.com', '"example.com": not an IPv4/IPv6 address, CIDR block, range, any or none'],
    [
      '203.0.113.1 198.51.100.1',
      '"203.0.113.1 198.51.100.1": not an IPv4/IPv6 address, CIDR block, range, any or none',
    ],
  ])('%j: %s', (value, message) => {
    expect(rejected(value)).toBe(message);
  });
});

describe('hostile values never parse', () => {
  it.each([
    '203.0.113.1\n-A INPUT -j ACCEPT',
    '203.0.113.1 -j ACCEPT',
    '203.0.113.1;iptables -F',
    '203.0.113.1"',
    "'203.0.113.1'",
    '$(reboot)',
    '`reboot`',
    '203.0.113.1/24}',
    '{203.0.113.1}',
    '203.0.113.1\0',
    '203.0.113.1\r',
    '203.0.113.1 #',
    '203.0.113.1\u00a0',
  ])('%j', (value) => {
    expect(parseSources(value).ok).toBe(false);
  });

  it('rejects a 1 MB value quickly, without looking at the items', () => {
    const value = '203.0.113.1,'.repeat(90_000);
    const started = performance.now();
    expect(rejected(value)).toBe(
      `value is ${value.length} characters long, the limit is ${MAX_VALUE_LENGTH}`,
    );
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('accepts a value just under the limit', () => {
    const item = '203.0.113.1, ';
    const value = item.repeat(Math.floor(MAX_VALUE_LENGTH / item.length)).slice(0, -2);
    expect(value.length).toBeLessThanOrEqual(MAX_VALUE_LENGTH);
    expect(accepted(value)).toBe('203.0.113.1/32');
  });

  it.each([
    ['a run of blanks inside an item', `203.0.113.1${' '.repeat(MAX_VALUE_LENGTH - 30)}x`],
    ['a run of blanks before a comma', `${' \t'.repeat(MAX_VALUE_LENGTH / 2 - 10)},any`],
    ['many commas', `any${', any'.repeat(MAX_VALUE_LENGTH / 5 - 1)}`],
    ['a long run of colons', ':'.repeat(MAX_VALUE_LENGTH)],
    ['a long run of digits and dots', '1.'.repeat(MAX_VALUE_LENGTH / 2)],
    ['a long prefix', `10.0.0.0/${'0'.repeat(MAX_VALUE_LENGTH - 10)}`],
    ['a long range', `10.0.0.0-${'9'.repeat(MAX_VALUE_LENGTH - 10)}`],
  ])('parses a worst case in linear time: %s', (_what, value) => {
    expect(value.length).toBeLessThanOrEqual(MAX_VALUE_LENGTH);
    const started = performance.now();
    parseSources(value);
    expect(performance.now() - started).toBeLessThan(100);
  });

  it('shortens and escapes the quoted item in messages', () => {
    const message = rejected(`${'x'.repeat(100)}\n-j ACCEPT`);
    expect(message).not.toContain('\n');
    expect(message.length).toBeLessThan(140);
  });
});

describe('the merged set is exactly the union of the items', () => {
  // Addresses near a few bases, so items overlap often.
  const bases: Record<Family, bigint> = { 4: 0xcb007100n, 6: 0x20010db8n << 96n };
  const offset = fc.bigInt({ min: 0n, max: 300n });

  const item = fc.oneof(
    fc.record({ kind: fc.constant('address' as const), family: fc.constantFrom<Family>(4, 6), a: offset }),
    fc.record({
      kind: fc.constant('range' as const),
      family: fc.constantFrom<Family>(4, 6),
      a: offset,
      b: offset,
    }),
    fc.record({
      kind: fc.constant('cidr' as const),
      family: fc.constantFrom<Family>(4, 6),
      a: offset,
      hostBits: fc.integer({ min: 0, max: 8 }),
    }),
  );
  type Item = typeof item extends fc.Arbitrary<infer T> ? T : never;

  function itemInterval(i: Item): { family: Family; start: bigint; end: bigint } {
    const base = bases[i.family];
    if (i.kind === 'address') return { family: i.family, start: base + i.a, end: base + i.a };
    if (i.kind === 'range') {
      const [lo, hi] = i.a <= i.b ? [i.a, i.b] : [i.b, i.a];
      return { family: i.family, start: base + lo, end: base + hi };
    }
    const size = 1n << BigInt(i.hostBits);
    const start = base + (i.a / size) * size;
    return { family: i.family, start, end: start + size - 1n };
  }

  function itemText(i: Item): string {
    const { family, start, end } = itemInterval(i);
    if (i.kind === 'address') return formatAddress(family, start);
    if (i.kind === 'range') return `${formatAddress(family, start)}-${formatAddress(family, end)}`;
    return `${formatAddress(family, start)}/${(family === 4 ? 32 : 128) - i.hostBits}`;
  }

  it('for random items and probe addresses', () => {
    fc.assert(
      fc.property(
        fc.array(item, { minLength: 1, maxLength: 12 }),
        fc.array(fc.tuple(fc.constantFrom<Family>(4, 6), fc.bigInt({ min: -2n, max: 305n })), {
          maxLength: 40,
        }),
        (items, probes) => {
          const result = parseSources(items.map(itemText).join(', '));
          if (!result.ok || result.value.any) throw new Error('expected a set');
          const set = result.value;
          const intervals = items.map(itemInterval);
          // Random probes, plus every item's edges and their neighbours.
          const edges = intervals.flatMap((i) =>
            [i.start - 1n, i.start, i.end, i.end + 1n].map((a) => [i.family, a - bases[i.family]] as const),
          );
          for (const [family, delta] of [...probes, ...edges]) {
            const address = bases[family] + delta;
            const naive = intervals.some(
              (i) => i.family === family && i.start <= address && address <= i.end,
            );
            expect(contains(family === 4 ? set.v4 : set.v6, address)).toBe(naive);
          }
          // Merged: sorted, disjoint and not even adjacent.
          for (const list of [set.v4, set.v6]) {
            for (let k = 1; k < list.length; k++) {
              expect((list[k - 1]?.end ?? 0n) + 1n).toBeLessThan(list[k]?.start ?? 0n);
            }
          }
          // Each merged interval's text parses back to itself.
          for (const family of [4, 6] as const) {
            for (const interval of family === 4 ? set.v4 : set.v6) {
              const text = formatInterval(family, interval).text;
              const again = parseSources(text);
              expect(
                again.ok && !again.value.any && (family === 4 ? again.value.v4 : again.value.v6),
              ).toEqual([interval]);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
