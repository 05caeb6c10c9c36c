// Where do Docker's rules live? iptables-nft and iptables-legacy are blind to
// each other and both filter every packet, so dockfw must write into the one
// Docker uses, per family. Docker's chains tell which.
import { readFile } from 'node:fs/promises';
import type { Family } from '../../docker/snapshot.js';
import { CommandError, type CommandRunner } from '../command.js';
import { jumpPositions, readFilterTable, type FilterTable, type Variant } from './read.js';

/** Chains only Docker creates in the filter table. */
const DOCKER_CHAINS = ['DOCKER-USER', 'DOCKER', 'DOCKER-FORWARD'] as const;

/** Where dockfw's jump goes for one family, plus the table read to decide it. */
export interface Placement {
  readonly family: Family;
  readonly variant: Variant;
  /** DOCKER-USER, or FORWARD where the engine has no DOCKER-USER for this family. */
  readonly parent: string;
  readonly table: FilterTable;
  /** The other variant's table, when it is in use (dockfw may have left rules there). */
  readonly other?: { readonly variant: Variant; readonly table: FilterTable };
}

function otherTable(
  tables: ReadonlyMap<Variant, FilterTable>,
  chosen: Variant,
): { other: { variant: Variant; table: FilterTable } } | Record<string, never> {
  for (const [variant, table] of tables) if (variant !== chosen) return { other: { variant, table } };
  return {};
}

export interface DetectDeps {
  readonly run: CommandRunner;
  /** Contents of /proc/net/ip{,6}_tables_names ('' when absent). */
  readonly legacyTableNames: (family: Family) => Promise<string>;
}

export async function procLegacyTableNames(family: Family): Promise<string> {
  const path = family === 4 ? '/proc/net/ip_tables_names' : '/proc/net/ip6_tables_names';
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

export function hasDockerChains(table: FilterTable): boolean {
  return DOCKER_CHAINS.some((chain) => table.chains.has(chain));
}

/**
 * How strongly a table looks like the one Docker is using right now: FORWARD
 * jumping to its chains, then how many rules Docker keeps in its own chains
 * (DOCKER-USER is left out: it holds the admin's and dockfw's rules).
 */
function dockerScore(table: FilterTable): number {
  const forward = table.chains.get('FORWARD') ?? [];
  const jumps = forward.filter((rule) => /-j DOCKER(-USER|-FORWARD)?$/.test(rule)).length;
  const own = [...table.chains]
    .filter(([chain]) => chain.startsWith('DOCKER') && chain !== 'DOCKER-USER')
    .reduce((sum, [, rules]) => sum + rules.length, 0);
  return jumps * 1000 + own;
}

/**
 * The variants worth reading for one family: nft always, legacy only when in
 * use (reading legacy tables that do not exist would create them; the kernel
 * lists the ones in use).
 */
export async function variantsInUse(
  legacyTableNames: DetectDeps['legacyTableNames'],
  family: Family,
): Promise<Variant[]> {
  return (await legacyTableNames(family)).trim() !== '' ? ['nft', 'legacy'] : ['nft'];
}

/** Reads the filter table of each variant that is installed and in use. */
async function readVariants(deps: DetectDeps, family: Family): Promise<Map<Variant, FilterTable>> {
  const tables = new Map<Variant, FilterTable>();
  const missing: CommandError[] = [];
  const variants = await variantsInUse(deps.legacyTableNames, family);
  const reads = await Promise.allSettled(
    variants.map((variant) => readFilterTable(deps.run, family, variant)),
  );
  reads.forEach((read, i) => {
    const variant = variants[i] as Variant;
    if (read.status === 'fulfilled') tables.set(variant, read.value);
    else if (read.reason instanceof CommandError && read.reason.missing) missing.push(read.reason);
    else throw read.reason;
  });
  if (tables.size === 0 && missing[0]) throw missing[0];
  return tables;
}

/** Picks the variant holding Docker's chains; undefined when none does. */
export function chooseVariant(tables: ReadonlyMap<Variant, FilterTable>): Variant | undefined {
  let best: { variant: Variant; score: number } | undefined;
  for (const [variant, table] of tables) {
    if (!hasDockerChains(table)) continue;
    const score = dockerScore(table);
    if (!best || score > best.score) best = { variant, score };
  }
  return best?.variant;
}

/**
 * IPv4: the variant with Docker's chains; undefined while the engine has not
 * created them yet (retry later).
 */
export async function detectIpv4(deps: DetectDeps): Promise<Placement | undefined> {
  const tables = await readVariants(deps, 4);
  const variant = chooseVariant(tables);
  const table = variant && tables.get(variant);
  if (!variant || !table) return undefined;
  return { family: 4, variant, parent: 'DOCKER-USER', table, ...otherTable(tables, variant) };
}

/**
 * IPv6: the variant with Docker's chains, else IPv4's (awaited only then: the
 * two families' reads may run side by side). Engines before 24 have
 * no IPv6 DOCKER-USER of their own; then the jump is kept first in FORWARD. A
 * DOCKER-USER that FORWARD does not jump to (made by \`dockfw guard\` at boot,
 * ignored by such an engine) would never see a packet.
 */
export async function detectIpv6(
  deps: DetectDeps,
  ipv4Variant: Variant | PromiseLike<Variant>,
): Promise<Placement> {
  const tables = await readVariants(deps, 6);
  const variant = chooseVariant(tables) ?? (await ipv4Variant);
  const table = tables.get(variant) ?? (await readFilterTable(deps.run, 6, variant));
  const reached = jumpPositions(table, 'FORWARD', 'DOCKER-USER').length > 0;
  const parent = table.chains.has('DOCKER-USER') && reached ? 'DOCKER-USER' : 'FORWARD';
  return { family: 6, variant, parent, table, ...otherTable(tables, variant) };
}
