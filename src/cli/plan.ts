// `dockfw plan`: the exact payloads a sync would apply, plus a human summary.
// Payloads go to stdout (pipeable into iptables-restore --test), the summary to stderr.
import { readFile } from 'node:fs/promises';
import { createBackend, fastPathAvailable } from '../backends/create.js';
import type { BackendName } from '../backends/firewall.js';
import { ConfigError, type Config } from '../config/config.js';
import { parseInspectArray } from '../docker/inspect.js';
import type { ContainerSnapshot, EngineSnapshot, Family } from '../docker/snapshot.js';
import {
  desiredState,
  formatLabelError,
  formatLabelWarning,
  type DesiredState,
  type PortSummary,
} from '../policy/desired.js';
import { CONFIG_OPTIONS, configFrom, configHelp, parse, UsageError } from './args.js';
import { readLiveSnapshot } from './live.js';
import { portOrigin } from './port-origin.js';

const HELP = `Usage: dockfw plan [--input FILE] [--family 4|6] [--sets] [configuration flags]

Prints the payloads dockfw would apply for the containers in FILE (the JSON
array printed by \`docker inspect\`), or without --input for the live engine at
DOCKER_HOST, as if no dockfw rules existed yet: the iptables-restore payloads,
or with DOCKFW_BACKEND=nftables the \`nft -f\` payload of table inet dockfw.
The iptables rules look the verdicts up in ipsets: --sets prints the
\`ipset restore\` batches that fill them instead (load those first).
Payloads go to stdout; a summary per container and any label errors go to stderr.
With --family (iptables), only that family's payload is printed, so it can be
piped into \`iptables-restore --test --noflush\`; the nftables table serves both
families in one payload.

Options:
  --input FILE      docker inspect JSON array (default: the live engine)
  --family 4|6      print one family only
  --sets            print the ipset restore batches (who may reach what) instead
  --help            this text

${configHelp()}
`;

/** Payload text for the given families, as the first sync would apply them (no jump yet). */
export function renderPlan(
  snapshot: EngineSnapshot,
  config: Config,
  families: readonly Family[] = [4, 6],
): string {
  const desired = desiredState(snapshot, config);
  return renderPayloads(desired, families, 0, planBackend(config));
}

/** The backend `plan` renders for: `auto` cannot ask an engine's firewall here, and means iptables. */
export function planBackend(config: Config): BackendName {
  return config.backend === 'nftables' ? 'nftables' : 'iptables';
}

/**
 * What `backend` would apply for `desired`. `dropRecords` > 0: with the drop
 * rules `run` applies (the iptables payload then names the record ipset it needs first).
 */
export function renderPayloads(
  desired: DesiredState,
  families: readonly Family[],
  dropRecords = 0,
  backend: BackendName = 'iptables',
  sets = false,
  fastPath = false,
): string {
  return createBackend(backend).render(desired, { families, dropRecords, sets, fastPath });
}

/** Consecutive ports of one protocol with the same answer, as one line. */
function portRuns(ports: readonly PortSummary[]): { ports: string; port: PortSummary }[] {
  const runs: { from: PortSummary; to: PortSummary }[] = [];
  for (const port of ports) {
    const last = runs[runs.length - 1];
    if (
      last !== undefined &&
      last.to.protocol === port.protocol &&
      last.to.port + 1 === port.port &&
      last.to.allow === port.allow &&
      portOrigin(last.to) === portOrigin(port)
    ) {
      last.to = port;
    } else {
      runs.push({ from: port, to: port });
    }
  }
  return runs.map(({ from, to }) => ({
    ports: `${from.port === to.port ? from.port : `${from.port}-${to.port}`}/${from.protocol}`,
    port: from,
  }));
}

/** Per container: state, addresses, each published port with who may reach it; then errors. */
export function renderSummary(desired: DesiredState): string {
  const lines: string[] = [];
  if (desired.containers.length === 0) lines.push('no running containers with published ports');
  for (const c of desired.containers) {
    lines.push(`${c.name} (${c.id.slice(0, 12)}): ${c.state}`);
    lines.push(`  addresses: ${c.addresses.length > 0 ? c.addresses.join(', ') : '(none)'}`);
    for (const run of portRuns(c.ports)) {
      lines.push(`  ${run.ports.padEnd(15)} from ${run.port.allow} (${portOrigin(run.port)})`);
    }
  }
  if (desired.errors.length > 0) {
    lines.push('label errors (these containers are closed to outside):');
    lines.push(...desired.errors.map((e) => `  ${formatLabelError(e)}`));
  }
  const warnings = desired.warnings ?? [];
  if (warnings.length > 0) {
    lines.push('ignored labels (not dockfw labels, though they look like them):');
    lines.push(...warnings.map((w) => `  ${formatLabelWarning(w)}`));
  }
  return `${lines.join('\n')}\n`;
}

function parseFamily(text: string | undefined): Family[] {
  if (text === undefined) return [4, 6];
  if (text === '4' || text === '6') return [Number(text) as Family];
  throw new UsageError(`--family must be 4 or 6, not ${JSON.stringify(text)}`);
}

export async function run(argv: string[]): Promise<number> {
  try {
    const { values } = parse(
      argv,
      {
        ...CONFIG_OPTIONS,
        input: { type: 'string' },
        family: { type: 'string' },
        sets: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      false,
    );
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    const families = parseFamily(values.family as string | undefined);
    const config = configFrom(values);
    const input = values.input;
    // Without --input: the live engine at DOCKER_HOST, bridges included.
    const snapshot: EngineSnapshot =
      typeof input === 'string'
        ? { containers: await readInspectFile(input), bridges: [] }
        : await readLiveSnapshot(config);
    const desired = desiredState(snapshot, config);
    // As run would write it on this host: with the fast path where conntrack works.
    const fastPath = await fastPathAvailable();
    const backend = planBackend(config);
    process.stdout.write(
      renderPayloads(desired, families, config.dropRecords, backend, values.sets === true, fastPath),
    );
    process.stderr.write(renderSummary(desired));
    return 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw plan: ${error.message}\n`);
      if (error instanceof UsageError) process.stderr.write('(see dockfw plan --help)\n');
      return 2;
    }
    process.stderr.write(`dockfw plan: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

/** A docker inspect file; errors name the file. */
export async function readInspectFile(file: string): Promise<ContainerSnapshot[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    return parseInspectArray(json);
  } catch (error) {
    throw new Error(
      `${file}: not docker inspect output: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
