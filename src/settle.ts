// Work run side by side that must all finish before a failure is reported: a
// sync that returns or throws leaves nothing of its own running, and no
// rejection goes unheard (one would end the process).

/** What a rejection carried, as an Error. */
export function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/** Waits for every promise; then throws the first failure (in argument order), else gives the values. */
export async function settleAll<T extends readonly unknown[]>(promises: {
  readonly [K in keyof T]: PromiseLike<T[K]>;
}): Promise<T> {
  const results = await Promise.allSettled(promises as readonly PromiseLike<unknown>[]);
  const values: unknown[] = [];
  for (const result of results) {
    if (result.status === 'rejected') throw asError(result.reason);
    values.push(result.value);
  }
  return values as unknown as T;
}
