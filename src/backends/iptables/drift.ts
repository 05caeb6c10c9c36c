// Does the kernel already say what the payload would write? Comparing the
// owned chains (normalised rule text, in order) and the jump lets a sync write
// nothing when nothing changed, and tells what drifted when something did.
import { OWNED_PREFIX } from './chains.js';
import { normalizeRule, parseFilterTable, type FilterTable } from './read.js';

export interface Drift {
  /** `CHAIN rule` lines the payload has and the kernel lacks. */
  readonly missing: readonly string[];
  /** `CHAIN rule` lines in owned chains that the payload does not have. */
  readonly unexpected: readonly string[];
  /** Same rules, another order (order decides the verdict). */
  readonly reordered: boolean;
  /** Owned chains the kernel does not have. */
  readonly chainsMissing: readonly string[];
  /** The jump is absent, duplicated or not first. */
  readonly jumpWrong: boolean;
}

export function hasDrift(drift: Drift): boolean {
  return (
    drift.missing.length > 0 ||
    drift.unexpected.length > 0 ||
    drift.reordered ||
    drift.chainsMissing.length > 0 ||
    drift.jumpWrong
  );
}

function ownedRules(table: FilterTable, chains: Iterable<string>): string[] {
  return [...chains].flatMap((chain) =>
    (table.chains.get(chain) ?? []).map((rule) => `${chain} ${normalizeRule(rule)}`),
  );
}

/** Lines of `a` not matched one-for-one in `b`. */
function minus(a: readonly string[], b: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const line of b) left.set(line, (left.get(line) ?? 0) + 1);
  return a.filter((line) => {
    const count = left.get(line) ?? 0;
    if (count === 0) return true;
    left.set(line, count - 1);
    return false;
  });
}

export function diffOwned(current: FilterTable, payload: string, jumpPositions: readonly number[]): Drift {
  const desired = parseFilterTable(payload);
  const chains = [...desired.chains.keys()].filter((chain) => chain.startsWith(OWNED_PREFIX));
  const want = ownedRules(desired, chains);
  const have = ownedRules(current, chains);
  const missing = minus(want, have);
  const unexpected = minus(have, want);
  return {
    missing,
    unexpected,
    reordered: missing.length === 0 && unexpected.length === 0 && want.join('\n') !== have.join('\n'),
    chainsMissing: chains.filter((chain) => !current.chains.has(chain)),
    jumpWrong: jumpPositions.length !== 1 || jumpPositions[0] !== 1,
  };
}
