// One ordering for texts and big integers: by code unit, the same on every
// host. (localeCompare would also load ICU's collation data, about 2 MB of
// resident memory, to sort ASCII words.)

/** Ascending order of two strings (by UTF-16 code unit) or two bigints. */
export function ascending<T extends string | bigint>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
