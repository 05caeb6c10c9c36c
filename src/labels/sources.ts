// `<sources>` of a dockfw.allow label: who from outside may connect.
import type { Family } from '../net/family.js';
import { cidrInterval, mergeIntervals, type Interval } from '../net/intervals.js';
import { FAMILY_BITS, isIPv4Mapped, parseAddress, type ParsedAddress } from '../net/ip.js';

/** Longest label value we look at; longer ones are an error, so parsing stays cheap. */
export const MAX_VALUE_LENGTH = 64 * 1024;

/** `any`: no restriction. Otherwise merged intervals per family; both empty = nobody. */
export type SourceSet =
  | { readonly any: true }
  | { readonly any: false; readonly v4: readonly Interval[]; readonly v6: readonly Interval[] };

export const ANY: SourceSet = { any: true };
export const NONE: SourceSet = { any: false, v4: [], v6: [] };

export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string };

const PREFIX_DIGITS = /^(?:0|[1-9][0-9]{0,2})$/;

/** Quoted, shortened, control characters escaped: safe to put in a log line. */
export function quote(text: string): string {
  const short = text.length > 60 ? `${text.slice(0, 57)}...` : text;
  return JSON.stringify(short);
}

/** Strips spaces and tabs at both ends (a regex for this would be quadratic on long blank runs). */
function trimBlanks(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === ' ' || text[start] === '\t')) start++;
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--;
  return text.slice(start, end);
}

export function parseSources(value: string): Parsed<SourceSet> {
  if (value.length > MAX_VALUE_LENGTH) {
    return {
      ok: false,
      message: `value is ${value.length} characters long, the limit is ${MAX_VALUE_LENGTH}`,
    };
  }
  const items = value.split(',').map(trimBlanks);
  if (items.length === 1 && items[0] === '')
    return { ok: false, message: 'empty value (write none to close)' };
  let any = false;
  let none = false;
  const intervals: Record<Family, Interval[]> = { 4: [], 6: [] };
  for (const item of items) {
    if (item === '') return { ok: false, message: 'empty item between commas' };
    if (item === 'any') {
      any = true;
      continue;
    }
    if (item === 'none') {
      none = true;
      continue;
    }
    const parsed = parseSourceItem(item);
    if (!parsed.ok) return { ok: false, message: `${quote(item)}: ${parsed.message}` };
    intervals[parsed.value.family].push(parsed.value.interval);
  }
  if (none && items.length > 1) return { ok: false, message: 'none cannot be combined with other sources' };
  if (any) return { ok: true, value: ANY };
  return {
    ok: true,
    value: { any: false, v4: mergeIntervals(intervals[4]), v6: mergeIntervals(intervals[6]) },
  };
}

interface FamilyInterval {
  readonly family: Family;
  readonly interval: Interval;
}

/** One address, CIDR block or `a-b` range. */
export function parseSourceItem(item: string): Parsed<FamilyInterval> {
  const slash = item.indexOf('/');
  if (slash >= 0) return parseCidr(item.slice(0, slash), item.slice(slash + 1));
  const dash = item.indexOf('-');
  if (dash >= 0) return parseRange(item.slice(0, dash), item.slice(dash + 1));
  const address = parseOneAddress(item);
  if (!address.ok) return address;
  const { family, value } = address.value;
  return { ok: true, value: { family, interval: { start: value, end: value } } };
}

function parseCidr(addressText: string, prefixText: string): Parsed<FamilyInterval> {
  const address = parseOneAddress(addressText);
  if (!address.ok) return address;
  const { family, value } = address.value;
  const bits = FAMILY_BITS[family];
  const prefix = PREFIX_DIGITS.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!(prefix >= 0 && prefix <= bits)) return { ok: false, message: `prefix length must be 0-${bits}` };
  if ((value & ((1n << BigInt(bits - prefix)) - 1n)) !== 0n) {
    return { ok: false, message: `host bits set (address is not the start of a /${prefix} block)` };
  }
  return { ok: true, value: { family, interval: cidrInterval(family, value, prefix) } };
}

function parseRange(fromText: string, toText: string): Parsed<FamilyInterval> {
  const from = parseOneAddress(fromText);
  if (!from.ok) return from;
  const to = parseOneAddress(toText);
  if (!to.ok) return to;
  if (from.value.family !== to.value.family) return { ok: false, message: 'range mixes IPv4 and IPv6' };
  if (from.value.value > to.value.value) return { ok: false, message: 'range start is after its end' };
  return {
    ok: true,
    value: { family: from.value.family, interval: { start: from.value.value, end: to.value.value } },
  };
}

function parseOneAddress(text: string): Parsed<ParsedAddress> {
  if (text.includes('%')) return { ok: false, message: 'zone ids (%…) are not allowed' };
  const address = parseAddress(text);
  if (address === undefined) {
    return { ok: false, message: 'not an IPv4/IPv6 address, CIDR block, range, any or none' };
  }
  if (address.family === 6 && isIPv4Mapped(address.value)) {
    return { ok: false, message: 'IPv4-mapped IPv6 address; write the IPv4 address instead' };
  }
  return { ok: true, value: address };
}
