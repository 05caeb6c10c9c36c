// `dockfw status`: asks the running daemon (GET /status on DOCKFW_LISTEN) what it
// enforces, and prints it as a table or as JSON.
import { describePlacement } from '../backends/firewall.js';
import { ConfigError } from '../config/config.js';
import { askDaemon, DaemonUnreachableError, listenAddress } from '../observe/client.js';
import type { StatusReport } from '../observe/state.js';
import { formatLabelWarning, type ContainerSummary } from '../policy/desired.js';
import { parse, UsageError } from './args.js';
import { portOrigin } from './port-origin.js';

const HELP = `Usage: dockfw status [--json] [--listen=HOST:PORT]

Asks the running \`dockfw run\` (GET /status on its DOCKFW_LISTEN address) which
containers have published ports, their addresses and ports, who may reach each
port and what decided it (the label, the default policy, or an invalid label).
Container states:
  enforced              dockfw.allow labels decide (ports no label covers: the default policy)
  closed-invalid-label  a dockfw label is invalid: every published port is closed
  default-allow         no dockfw label; DOCKFW_DEFAULT_POLICY=allow leaves it open
  default-deny          no dockfw label; DOCKFW_DEFAULT_POLICY=deny closes it

Options:
  --json                print the daemon's answer as JSON
  --listen=HOST:PORT    where the daemon listens; default: DOCKFW_LISTEN, else 127.0.0.1:9811
  --help                show this help

Exit status:
  0  the daemon is ready: connected to Docker and its last sync succeeded
  1  the daemon answered but is not ready (first sync not done, Docker
     unreachable, or the last sync failed); the reason is printed
  2  the daemon did not answer (not running, other address, DOCKFW_LISTEN
     empty), or bad usage
`;

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows.reduce<number[]>(
    (w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)),
    [],
  );
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function containerRows(container: ContainerSummary): string[][] {
  const addresses = container.addresses.join(', ') || '-';
  return container.ports.map((port, i) => [
    i === 0 ? container.name : '',
    i === 0 ? container.state : '',
    i === 0 ? addresses : '',
    `${port.port}/${port.protocol}`,
    portOrigin(port),
    port.allow,
  ]);
}

/** The human form of a /status answer. */
export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  const sync = report.lastSync;
  const syncText =
    sync === null
      ? 'no sync yet'
      : sync.ok
        ? `last sync ok at ${sync.at}`
        : `last sync FAILED at ${sync.at}: ${sync.error ?? ''}`;
  lines.push(
    `dockfw ${report.version}: ${report.ready ? 'ready' : 'NOT READY'}; ${syncText}; default policy ${report.defaultPolicy}`,
  );
  for (const reason of report.notReady) lines.push(`  not ready: ${reason}`);
  if (report.firewall.length > 0) {
    const families = report.firewall.map((f) => `ipv${f.family} ${describePlacement(f)}`);
    lines.push(`firewall: ${families.join(', ')}`);
  }
  lines.push('');
  if (report.containers.length === 0) {
    lines.push('no running containers with published ports');
  } else {
    const header = ['CONTAINER', 'STATE', 'ADDRESSES', 'PORT', 'DECIDED BY', 'ALLOW'];
    lines.push(table([header, ...report.containers.flatMap(containerRows)]));
  }
  const paths = report.containers.flatMap((c) =>
    (c.paths ?? []).map((p, i) => [i === 0 ? c.name : '', p.to, p.how, p.judgedOn]),
  );
  if (paths.length > 0) {
    lines.push('', 'paths from outside (every one judged by dockfw):');
    lines.push(table([['CONTAINER', 'TO', 'PATH', 'JUDGED ON'], ...paths]));
  }
  if (report.labelErrors.length > 0) {
    lines.push('', 'invalid labels (these containers are closed):');
    for (const e of report.labelErrors) lines.push(`  ${e.container}: ${e.label}: ${e.message}`);
  }
  const warnings = report.labelWarnings ?? [];
  if (warnings.length > 0) {
    lines.push('', 'ignored labels (not dockfw labels, though they look like them):');
    for (const w of warnings) lines.push(`  ${formatLabelWarning(w)}`);
  }
  return `${lines.join('\n')}\n`;
}

function isStatusReport(value: unknown): value is StatusReport {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { ready?: unknown }).ready === 'boolean' &&
    Array.isArray((value as { containers?: unknown }).containers)
  );
}

export async function run(argv: string[]): Promise<number> {
  let values;
  let listen;
  try {
    values = parse(
      argv,
      { json: { type: 'boolean' }, listen: { type: 'string' }, help: { type: 'boolean' } },
      false,
    ).values;
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    listen = listenAddress(typeof values.listen === 'string' ? values.listen : undefined);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw status: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (listen === null) {
    process.stderr.write(
      'dockfw status: DOCKFW_LISTEN is empty, so the daemon serves no status; set it on both sides\n',
    );
    return 2;
  }
  let report: unknown;
  try {
    const answer = await askDaemon(listen, '/status');
    report = answer.status === 200 ? JSON.parse(answer.body) : undefined;
  } catch (error) {
    if (!(error instanceof DaemonUnreachableError || error instanceof SyntaxError)) throw error;
    process.stderr.write(`dockfw status: ${error.message}\n`);
    return 2;
  }
  if (!isStatusReport(report)) {
    process.stderr.write(
      'dockfw status: the answer is not a dockfw status (another program on that port?)\n',
    );
    return 2;
  }
  process.stdout.write(values.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
  return report.ready ? 0 : 1;
}
