// List differences the backends' drift checks share. Two meanings, two names:
// rules may repeat (each copy counts), set elements may not.

/** Items of `a` not matched one-for-one in `b` (a repeated rule needs as many copies). */
export function unmatched(a: readonly string[], b: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const item of b) left.set(item, (left.get(item) ?? 0) + 1);
  return a.filter((item) => {
    const count = left.get(item) ?? 0;
    if (count === 0) return true;
    left.set(item, count - 1);
    return false;
  });
}

/** Items of `a` that `b` does not hold at all. */
export function absentFrom(a: readonly string[], b: readonly string[]): string[] {
  const other = new Set(b);
  return a.filter((item) => !other.has(item));
}

export function sameList(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
