// Reading the kernel: `iptables-save -t filter` text into chains and rules, and
// a normal form for rule text so a rendered `-A` line and what iptables-save
// prints for it compare equal.
import type { Family } from '../../docker/snapshot.js';
import type { CommandRunner } from '../command.js';

import type { IptablesVariant as Variant } from '../firewall.js';
export type { Variant };

/** The iptables tables dockfw writes to. */
export type TableName = 'filter' | 'mangle';

/** One table (filter unless said) as iptables-save prints it: rule text after `-A CHAIN `. */
export interface FilterTable {
  readonly chains: ReadonlyMap<string, readonly string[]>;
}

export function saveCommand(family: Family, variant: Variant): string {
  return `${family === 4 ? 'iptables' : 'ip6tables'}-${variant}-save`;
}

export function restoreCommand(family: Family, variant: Variant): string {
  return `${family === 4 ? 'iptables' : 'ip6tables'}-${variant}-restore`;
}

export async function readFilterTable(
  run: CommandRunner,
  family: Family,
  variant: Variant,
  name: TableName = 'filter',
): Promise<FilterTable> {
  const { stdout } = await run(saveCommand(family, variant), ['-t', name]);
  return parseFilterTable(stdout, name);
}

/** Parses one table's section (`*filter` unless said) of iptables-save output; others are ignored. */
export function parseFilterTable(text: string, name: TableName = 'filter'): FilterTable {
  const chains = new Map<string, string[]>();
  let inFilter = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inFilter = line === `*${name}`;
      continue;
    }
    if (!inFilter || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inFilter = false;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0];
      if (name && !chains.has(name)) chains.set(name, []);
      continue;
    }
    const match = /^-A\s+(\S+)\s*(.*)$/.exec(line);
    if (match) {
      const [, chain = '', rule = ''] = match;
      const rules = chains.get(chain) ?? [];
      rules.push(rule);
      chains.set(chain, rules);
    }
  }
  return { chains };
}

/**
 * A token: runs of quoted text (an unclosed quote runs to the end) and of
 * characters other than whitespace and quotes, back to back.
 */
const TOKEN = /(?:"[^"]*(?:"|$)|[^\s"])+/g;

/**
 * Splits rule text into arguments the way iptables-restore does (double quotes
 * group). A regular expression rather than a loop per character: a sync at
 * 5,000 containers splits some 200,000 rules.
 */
export function tokenizeRule(rule: string): string[] {
  const tokens = rule.match(TOKEN) ?? [];
  return rule.includes('"') ? tokens.map((token) => token.replaceAll('"', '')) : tokens;
}

// iptables-save prints the basic selectors in this order, before any match.
const SELECTORS = ['-s', '-d', '-i', '-o', '-p'] as const;
const LONG_SELECTORS: Record<string, string> = {
  '--source': '-s',
  '--destination': '-d',
  '--in-interface': '-i',
  '--out-interface': '-o',
  '--protocol': '-p',
};

function withPrefixLength(address: string): string {
  if (address.includes('/')) return address;
  return address.includes(':') ? `${address}/128` : `${address}/32`;
}

/**
 * A canonical form of one rule's text: selectors first in iptables-save's
 * order, addresses with a prefix length, quoting removed, single spaces.
 * Matches and target keep their order (it is meaningful).
 */
export function normalizeRule(rule: string): string {
  const tokens = tokenizeRule(rule);
  const selectors = new Map<string, string[]>();
  const rest: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const negated = tokens[i] === '!';
    const flagIndex = negated ? i + 1 : i;
    const flagToken = tokens[flagIndex] ?? '';
    const flag = LONG_SELECTORS[flagToken] ?? flagToken;
    const value = tokens[flagIndex + 1];
    if ((SELECTORS as readonly string[]).includes(flag) && value !== undefined && !selectors.has(flag)) {
      const shown = flag === '-s' || flag === '-d' ? withPrefixLength(value) : value;
      selectors.set(flag, negated ? ['!', flag, shown] : [flag, shown]);
      i = flagIndex + 1;
      continue;
    }
    rest.push(tokens[i] ?? '');
  }
  const ordered = SELECTORS.flatMap((flag) => selectors.get(flag) ?? []);
  return [...ordered, ...rest].join(' ');
}

/** 1-based positions of rules in `chain` that are exactly `-j target`. */
export function jumpPositions(table: FilterTable, chain: string, target: string): number[] {
  const wanted = `-j ${target}`;
  const positions: number[] = [];
  (table.chains.get(chain) ?? []).forEach((rule, index) => {
    if (normalizeRule(rule) === wanted) positions.push(index + 1);
  });
  return positions;
}
