// Label keys that look like dockfw's but are not (`DOCKFW.ALLOW`, `dockfw_allow`,
// ` dockfw.allow`, `dokfw.allow`). dockfw ignores them, so the port stays as the
// other labels or the default policy say: worth a warning, since the author
// almost certainly meant a dockfw label.
import { ALLOW_LABEL, LABEL_PREFIX, parseContainerLabels } from './labels.js';
import { quote } from './sources.js';

export interface LabelWarning {
  /** The key as written, quoted. */
  readonly label: string;
  /** e.g. `label "DOCKFW.ALLOW" is not a dockfw label (keys are case-sensitive: did you mean "dockfw.allow"?)` */
  readonly message: string;
}

const NAME = 'dockfw';
const ALLOW = 'allow';
/** name, separator (any, or none), a word, separator, the rest (ports, protocol). */
const SHAPE = /^([a-z]+)[\s._:-]*([a-z]*)[\s._:-]*(.*)$/is;

/** Levenshtein distance, for the short first part of a key only. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** What a lookalike key was probably meant to be, in dockfw's spelling. */
function intended(key: string): string | undefined {
  const match = SHAPE.exec(key.trim());
  if (match === null) return undefined;
  let name = (match[1] ?? '').toLowerCase();
  let word = (match[2] ?? '').toLowerCase();
  const rest = (match[3] ?? '').toLowerCase();
  // `dockfwallow`: no separator after the name.
  if (name !== NAME && name.startsWith(NAME) && word === '') {
    word = name.slice(NAME.length);
    name = NAME;
  }
  if (name.length > 12 || distance(name, NAME) > 1) return undefined;
  if (word !== '' && distance(word, ALLOW) <= 1) word = ALLOW;
  return [NAME, word, rest].filter((part) => part !== '').join('.');
}

function reason(key: string, meant: string): string {
  const valid = parseContainerLabels({ [meant]: 'any' }).kind === 'labeled';
  const suggestion = valid
    ? `did you mean ${quote(meant)}?`
    : `dockfw knows ${ALLOW_LABEL} and ${ALLOW_LABEL}.<port>`;
  if (key.toLowerCase() === meant) return `keys are case-sensitive: ${suggestion}`;
  if (key.trim() !== key) return `keys are compared exactly, spaces included: ${suggestion}`;
  return suggestion;
}

/**
 * Whether a label key matters to dockfw: one of its own (`dockfw.*`) or one that
 * looks like it (warned about). A snapshot keeps only these: a compose service
 * carries a dozen labels of a kilobyte or more that nothing here reads.
 */
export function concernsDockfw(key: string): boolean {
  return key.startsWith(LABEL_PREFIX) || intended(key) !== undefined;
}

/** Warnings for the keys among `labels` that look like dockfw's but are not; sorted by key. */
export function lookalikeLabels(labels: Readonly<Record<string, string>>): LabelWarning[] {
  const warnings: LabelWarning[] = [];
  for (const key of Object.keys(labels).sort()) {
    // Keys under `dockfw.` are dockfw's: parseContainerLabels judges them (a typo there is an error).
    if (key.startsWith(LABEL_PREFIX)) continue;
    const meant = intended(key);
    if (meant === undefined) continue;
    warnings.push({
      label: quote(key),
      message: `label ${quote(key)} is not a dockfw label (${reason(key, meant)})`,
    });
  }
  return warnings;
}
