// Does the kernel already say what the payload would write? Comparing the
// owned chains (normalised rule text, in order) and the jump lets a sync write
// nothing when nothing changed, and tells what drifted when something did.
import { unmatched as minus } from '../lists.js';
import { OWNED_PREFIX } from './chains.js';
import { normalizeRule, parseFilterTable, type FilterTable, type TableName } from './read.js';

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

/** `CHAIN rule` lines of the owned chains, as read (not normalised). */
function ownedLines(table: FilterTable, chains: Iterable<string>): string[] {
  return [...chains].flatMap((chain) => (table.chains.get(chain) ?? []).map((rule) => `${chain} ${rule}`));
}

function normalizeLine(line: string): string {
  const space = line.indexOf(' ');
  return `${line.slice(0, space)} ${normalizeRule(line.slice(space + 1))}`;
}

/** Both tables' drift as one report (mangle lines are named by their DOCKFW-PRE* chains). */
export function mergeDrift(a: Drift, b: Drift): Drift {
  return {
    missing: [...a.missing, ...b.missing],
    unexpected: [...a.unexpected, ...b.unexpected],
    reordered: a.reordered || b.reordered,
    chainsMissing: [...a.chainsMissing, ...b.chainsMissing],
    jumpWrong: a.jumpWrong || b.jumpWrong,
  };
}

/**
 * Lines the same as text match first; only the rest are normalised and matched
 * again (equal text normalises equal, so this finds the same differences).
 * At 5,000 containers normalising every rule took seconds per sync, while the
 * kernel prints dockfw's rules just as they were rendered.
 */
export function diffOwned(
  current: FilterTable,
  payload: string,
  jumpPositions: readonly number[],
  table: TableName = 'filter',
): Drift {
  const desired = parseFilterTable(payload, table);
  const chains = [...desired.chains.keys()].filter((chain) => chain.startsWith(OWNED_PREFIX));
  const want = ownedLines(desired, chains);
  const have = ownedLines(current, chains);
  const wantLeft = minus(want, have).map(normalizeLine);
  const haveLeft = minus(have, want).map(normalizeLine);
  const missing = minus(wantLeft, haveLeft);
  const unexpected = minus(haveLeft, wantLeft);
  const reordered =
    missing.length === 0 &&
    unexpected.length === 0 &&
    want.join('\n') !== have.join('\n') &&
    want.map(normalizeLine).join('\n') !== have.map(normalizeLine).join('\n');
  return {
    missing,
    unexpected,
    reordered,
    chainsMissing: chains.filter((chain) => !current.chains.has(chain)),
    jumpWrong: jumpPositions.length !== 1 || jumpPositions[0] !== 1,
  };
}
