// `dockfw drops [CONTAINER]`: who was dropped. Reads the drop records the
// kernel keeps (nftables sets or ipsets), maps each destination back to its
// container through the live engine, and prints the top sources.
import { ConfigError } from '../config/config.js';
import { DropAttributor, topDrops, type AttributedDrop } from '../drops/attribute.js';
import { readDropRecords, type ReadRecords } from '../drops/read.js';
import { desiredState } from '../policy/desired.js';
import { CONFIG_OPTIONS, configFrom, configHelp, parse, UsageError } from './args.js';
import { readLiveSnapshot } from './live.js';

const HELP = `Usage: dockfw drops [CONTAINER] [--top N] [--json] [configuration flags]

Prints the outside sources dockfw dropped, per container and port, most packets
first: read from the drop records the kernel keeps (nftables: sets drops4 and
drops6 of table inet dockfw; iptables: ipsets dockfw-drops4 and dockfw-drops6),
matched to containers through the live engine at DOCKER_HOST. A record lives
one hour after its last drop (iptables: after its first); a full record set
keeps dropping but records no new sources.

Options:
  CONTAINER     only this container (name or id prefix)
  --top N       at most N lines (default 20; 0: all)
  --json        the whole answer as JSON
  --help        this text

${configHelp()}
`;

/** `42s`, `7m`, `1h` (rounded down). */
export function formatAge(seconds: number): string {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

function portText(d: AttributedDrop): string {
  const host = d.family === 6 ? `[${d.destination}]` : d.destination;
  return `${host}:${d.port}/${d.protocol}`;
}

function seenText(d: AttributedDrop): string {
  return d.since === 'last' ? `${formatAge(d.ageSeconds)} ago` : `first ${formatAge(d.ageSeconds)} ago`;
}

/** Does `filter` (a name or an id prefix) name this drop's container? */
function matches(d: AttributedDrop, filter: string | undefined): boolean {
  if (filter === undefined) return true;
  return d.container === filter || (filter.length >= 4 && d.containerId?.startsWith(filter) === true);
}

export interface DropsReport {
  readonly sources: ReadRecords['sources'];
  /** Drops shown (after the container filter and --top). */
  readonly drops: readonly AttributedDrop[];
  /** Records that matched the filter, before --top. */
  readonly matched: number;
}

export function dropsReport(
  read: ReadRecords,
  attributor: DropAttributor,
  filter: string | undefined,
  top: number,
): DropsReport {
  const all = read.records.map((r) => attributor.attribute(r)).filter((d) => matches(d, filter));
  return { sources: read.sources, drops: topDrops(all, top === 0 ? all.length : top), matched: all.length };
}

/** The table `dockfw drops` prints, with a line on how full each record set is. */
export function renderDrops(report: DropsReport): string {
  const lines: string[] = [];
  for (const source of report.sources) {
    const parts = [...source.capacity].map(
      ([family, capacity]) => `IPv${family} ${source.count.get(family) ?? 0}/${capacity}`,
    );
    lines.push(`drop records (${source.backend}): ${parts.join(', ')}`);
  }
  if (report.sources.length === 0) {
    lines.push('no drop records: dockfw has not written its rules here, or records are off');
    return `${lines.join('\n')}\n`;
  }
  if (report.drops.length === 0) {
    lines.push('no drops recorded');
    return `${lines.join('\n')}\n`;
  }
  const header = ['CONTAINER', 'PORT', 'SOURCE', 'PACKETS', 'SEEN'];
  const rows = report.drops.map((d) => [
    d.container ?? '(none)',
    `${d.on === 'host' ? 'host ' : ''}${portText(d)}`,
    d.source,
    String(d.packets),
    seenText(d),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 3 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  lines.push('', line(header), ...rows.map(line));
  if (report.matched > report.drops.length)
    lines.push(`(${report.matched - report.drops.length} more; --top 0 shows all)`);
  return `${lines.join('\n')}\n`;
}

/** What `--json` prints. */
export function dropsJson(report: DropsReport, now: Date): unknown {
  return {
    records: report.sources.map((s) => ({
      backend: s.backend,
      families: [...s.capacity].map(([family, capacity]) => ({
        family: `ipv${family}`,
        count: s.count.get(family) ?? 0,
        capacity,
      })),
    })),
    matched: report.matched,
    drops: report.drops.map((d) => ({
      container: d.container ?? null,
      containerId: d.containerId ?? null,
      on: d.on ?? null,
      family: `ipv${d.family}`,
      destination: d.destination,
      protocol: d.protocol,
      port: d.port,
      source: d.source,
      packets: d.packets,
      bytes: d.bytes,
      // nftables: when the last drop was; iptables: the first (the record's timeout is not refreshed).
      [d.since === 'last' ? 'lastSeen' : 'firstSeen']: new Date(
        now.getTime() - d.ageSeconds * 1000,
      ).toISOString(),
    })),
  };
}

function parseTop(text: string | undefined): number {
  if (text === undefined) return 20;
  if (!/^[0-9]{1,6}$/.test(text))
    throw new UsageError(`--top: expected a number, got ${JSON.stringify(text)}`);
  return Number(text);
}

export async function run(argv: string[]): Promise<number> {
  try {
    const { values, positionals } = parse(
      argv,
      { ...CONFIG_OPTIONS, top: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
      true,
    );
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length > 1) throw new UsageError('at most one CONTAINER');
    const top = parseTop(values.top as string | undefined);
    const config = configFrom(values);
    const [read, snapshot] = await Promise.all([readDropRecords(config.backend), readLiveSnapshot(config)]);
    const report = dropsReport(read, new DropAttributor(desiredState(snapshot, config)), positionals[0], top);
    process.stdout.write(
      values.json === true
        ? `${JSON.stringify(dropsJson(report, new Date()), null, 2)}\n`
        : renderDrops(report),
    );
    return 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw drops: ${error.message}\n`);
      if (error instanceof UsageError) process.stderr.write('(see dockfw drops --help)\n');
      return 2;
    }
    process.stderr.write(`dockfw drops: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
