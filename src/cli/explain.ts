// `dockfw explain SOURCE TARGET[/PROTO]`: which way a packet goes, which label
// decides it, the verdict, and whether the kernel holds the rule that
// implements it right now. The decision is src/explain/ (pure); this file reads
// the engine (or an inspect file) and the kernel.
import { chooseBackend, type BackendName } from '../backends/select.js';
import { readKernelView } from '../backends/create.js';
import { ConfigError, type Config } from '../config/config.js';
import { readEngineSnapshot } from '../docker/container-cache.js';
import type { DockerClient } from '../docker/docker-client.js';
import { createDockerClient } from '../docker/dockerode-client.js';
import type { EngineSnapshot } from '../docker/snapshot.js';
import { explain, type Explanation } from '../explain/decide.js';
import type { KernelView } from '../backends/create.js';
import { formatTarget, parseQuery, QueryError } from '../explain/query.js';
import { buildReport, exitCode, renderText, toJson } from '../explain/report.js';
import { desiredState } from '../policy/desired.js';
import { CONFIG_OPTIONS, configFrom, configHelp, parse, UsageError } from './args.js';
import { readInspectFile } from './plan.js';

const HELP = `Usage: dockfw explain SOURCE TARGET[/PROTO] [--input FILE] [--json] [configuration flags]

Explains what happens to a new connection from SOURCE (an outside client's IPv4
or IPv6 address) to TARGET: the path the packet takes (DNAT to which container
address and port, docker-proxy for IPv6 to an IPv4-only container, or direct
routing to a container address), the container, what decides it (the label
dockfw.allow.<port> or dockfw.allow, the default policy, or an invalid label),
the verdict, and whether the kernel holds the rule or set element that
implements it right now (read back with iptables-save or nft).

TARGET is one of
  HOST:PORT          a host address and a published host port (IPv6: [ADDR]:PORT);
                     a container's own address means direct routing (container port)
  CONTAINER:PORT     a container name or id prefix and a published CONTAINER port
PROTO is tcp (the default), udp or sctp.

Without --input, reads the live engine at DOCKER_HOST and the kernel (as root,
in the host's network namespace). With --input FILE (the JSON array printed by
\`docker inspect\`) it works offline and says it could not check the kernel.

Options:
  --input FILE      docker inspect JSON array (offline; the kernel is not read)
  --json            print the explanation as JSON
  --help            this text

Exit status: 0 allowed, 1 denied, 2 bad usage or configuration, 3 unknown target
(no running container publishes that binding, no such container or port),
4 the engine or the input could not be read.

${configHelp()}
`;

/** Exit status when the engine or the input file cannot be read (1 means denied). */
const UNREADABLE = 4;

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? 'failed';
}

async function backendOf(config: Config, docker: DockerClient): Promise<BackendName> {
  if (config.backend !== 'auto') return config.backend;
  return chooseBackend('auto', (await docker.info()).firewallBackend);
}

/** The kernel as it is now, for the families the explanation needs; undefined + reason when it cannot be read. */
async function readKernel(
  config: Config,
  docker: DockerClient,
  explanation: Explanation,
): Promise<{ view: KernelView } | { reason: string }> {
  const families = [...new Set(explanation.paths.map((p) => p.family))];
  try {
    const backend = await backendOf(config, docker);
    return { view: await readKernelView(backend, families) };
  } catch (error) {
    return { reason: message(error) };
  }
}

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  let positionals: string[];
  let config: Config;
  try {
    ({ values, positionals } = parse(
      argv,
      { ...CONFIG_OPTIONS, input: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
      true,
    ));
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== 2)
      throw new UsageError(`expected SOURCE and TARGET, got ${positionals.length} argument(s)`);
    config = configFrom(values);
  } catch (error) {
    return usageFailure(error);
  }
  const [sourceText = '', targetText = ''] = positionals;
  let query;
  try {
    query = parseQuery(sourceText, targetText);
  } catch (error) {
    return usageFailure(error);
  }
  const input = values.input;
  let snapshot: EngineSnapshot;
  let docker: DockerClient | undefined;
  try {
    if (typeof input === 'string') {
      snapshot = { containers: await readInspectFile(input), bridges: [] };
    } else {
      docker = createDockerClient(config.dockerHost);
      snapshot = await readEngineSnapshot(docker);
    }
  } catch (error) {
    process.stderr.write(`dockfw explain: ${message(error)}\n`);
    return UNREADABLE;
  }
  const desired = desiredState(snapshot, config);
  const explanation = explain(snapshot, desired, query, config.defaultPolicy, formatTarget(query.target));
  let report;
  if (docker === undefined || explanation.paths.length === 0) {
    report = buildReport(
      desired,
      explanation,
      undefined,
      docker === undefined ? 'offline' : 'no path to check',
    );
  } else {
    const kernel = await readKernel(config, docker, explanation);
    report =
      'view' in kernel
        ? buildReport(desired, explanation, kernel.view)
        : buildReport(desired, explanation, undefined, kernel.reason);
  }
  process.stdout.write(
    values.json === true ? `${JSON.stringify(toJson(report), null, 2)}\n` : renderText(report),
  );
  return exitCode(report);
}

function usageFailure(error: unknown): number {
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof QueryError) {
    process.stderr.write(`dockfw explain: ${error.message}\n`);
    if (!(error instanceof ConfigError)) process.stderr.write('(see dockfw explain --help)\n');
    return 2;
  }
  throw error;
}
