// One ordering for texts and big integers: by code unit, the same on every
// host. (localeCompare would also load ICU's collation data, about 2 MB of
// resident memory, to sort ASCII words.)

/** Ascending order of two strings (by UTF-16 code unit) or two bigints, never one of each. */
export function ascending(a: string, b: string): number;
export function ascending(a: bigint, b: bigint): number;
export function ascending(a: string | bigint, b: string | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
