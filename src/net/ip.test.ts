import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIPv4, formatIPv6, isIPv4Mapped, parseAddress, parseIPv4, parseIPv6 } from './ip.js';

describe('parseIPv4', () => {
  it.each([
    ['0.0.0.0', 0n],
    ['1.2.3.4', 0x01020304n],
    ['255.255.255.255', 0xffffffffn],
    ['203.0.113.10', 0xcb00710an],
  ])('parses %s', (text, value) => {
    expect(parseIPv4(text)).toBe(value);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.04',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1..3.4',
    '1.2.3.-4',
    '1.2.3.+4',
    '0x1.2.3.4',
    '1.2.3.4\n',
    '１.2.3.4',
    '1e2.2.3.4',
  ])('rejects %j', (text) => {
    expect(parseIPv4(text)).toBeUndefined();
  });
});

describe('parseIPv6', () => {
  it.each([
    ['::', 0n],
    ['::1', 1n],
    ['2001:db8::', 0x20010db8n << 96n],
    ['2001:DB8::1', (0x20010db8n << 96n) | 1n],
    ['1:2:3:4:5:6:7:8', 0x00010002000300040005000600070008n],
    ['1:2:3:4:5:6:7::', 0x00010002000300040005000600070000n],
    ['::2:3:4:5:6:7:8', 0x00000002000300040005000600070008n],
    ['64:ff9b::192.0.2.1', (0x0064ff9bn << 96n) | 0xc0000201n],
    ['1:2:3:4:5:6:1.2.3.4', 0x00010002000300040005000601020304n],
    ['ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255', (1n << 128n) - 1n],
  ])('parses %s', (text, value) => {
    expect(parseIPv6(text)).toBe(value);
  });

  it.each([
    '',
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    ':1::2',
    '1::2:',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '12345::1',
    'g::1',
    '::1.2.3',
    '::01.2.3.4',
    '1.2.3.4::',
    '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    'fe80::1%eth0',
    '[::1]',
    ' ::1',
  ])('rejects %j', (text) => {
    expect(parseIPv6(text)).toBeUndefined();
  });
});

describe('formatting', () => {
  it.each([
    [0n, '::'],
    [1n, '::1'],
    [0x20010db8000000000000000000000001n, '2001:db8::1'],
    [0x20010db8000000010000000000000001n, '2001:db8:0:1::1'],
    // a single zero group is not compressed; the first of two equal runs is
    [0x20010db8000100010001000100010001n, '2001:db8:1:1:1:1:1:1'],
    [0x20010db8000000010001000000000001n, '2001:db8:0:1:1::1'],
    [0x00010000000000010000000000010001n, '1::1:0:0:1:1'],
    [0x00010000000000010000000000000001n, '1:0:0:1::1'],
    [0x20010000000000000001000000000001n, '2001::1:0:0:1'],
    // what glibc's inet_ntop (and so iptables-save) prints for these
    [0x01020304n, '::1.2.3.4'],
    [0xffff01020304n, '::ffff:1.2.3.4'],
  ])('formats %s as %s', (value, text) => {
    expect(formatIPv6(value)).toBe(text);
  });

  it('formats IPv4', () => {
    expect(formatIPv4(0xcb00710an)).toBe('203.0.113.10');
  });

  it('recognises IPv4-mapped addresses', () => {
    expect(isIPv4Mapped(parseIPv6('::ffff:1.2.3.4') ?? 0n)).toBe(true);
    expect(isIPv4Mapped(parseIPv6('::1.2.3.4') ?? 0n)).toBe(false);
    expect(isIPv4Mapped(parseIPv6('2001:db8::ffff:1.2.3.4') ?? 0n)).toBe(false);
  });
});

describe('properties', () => {
  const v6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });

  it('IPv6 text round-trips through the numbers', () => {
    fc.assert(fc.property(v6, (value) => parseIPv6(formatIPv6(value)) === value));
  });

  it('IPv4 text round-trips through the numbers', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 0xffffffffn }),
        (value) => parseIPv4(formatIPv4(value)) === value,
      ),
    );
  });

  it('IPv6 text is what the WHATWG URL parser prints (outside ::/96 and ::ffff:0:0/96)', () => {
    fc.assert(
      fc.property(
        v6.filter((value) => value >> 32n !== 0n && value >> 32n !== 0xffffn),
        (value) => {
          const text = formatIPv6(value);
          expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
        },
      ),
    );
  });

  it('accepts exactly what node:net isIP accepts (zone ids aside)', () => {
    const piece = fc.constantFrom(
      '0',
      '1',
      '00',
      '01',
      'a',
      'fF',
      'ffff',
      '12345',
      '255',
      '256',
      ':',
      '::',
      '.',
      '1.2.3.4',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 14 }), (pieces) => {
        const text = pieces.join('');
        const parsed = parseAddress(text);
        expect(parsed?.family ?? 0).toBe(isIP(text));
      }),
      { numRuns: 5000 },
    );
  });
});
