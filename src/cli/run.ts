// `dockfw run`: the sidecar. Watches Docker and keeps the firewall in step
// until SIGTERM/SIGINT; then stops at once and leaves the rules in place.
import { createFirewall } from '../backends/create.js';
import { onWriteSpawned } from '../backends/command.js';
import { ConfigError } from '../config/config.js';
import { createDockerClient } from '../docker/dockerode-client.js';
import { startObservability } from '../observe/index.js';
import { createLogger } from '../observe/logger.js';
import { systemClock } from '../runtime/clock.js';
import { Daemon } from '../runtime/daemon.js';
import { nftMonitorSpawner } from '../runtime/nft-monitor.js';
import { inInitialPidNamespace, OwnWriters } from '../runtime/own-writers.js';
import { CONFIG_OPTIONS, configFrom, configHelp, parse, UsageError } from './args.js';
import { version } from './main.js';
import { installStopSignals } from './signals.js';

const HELP = `Usage: dockfw run [configuration flags]

Runs the sidecar: subscribes to Docker's events, and after every relevant event
(and on the periodic check) re-lists the containers and brings dockfw's rules
(iptables chains, or the nftables table inet dockfw) in step with their
dockfw.allow labels. Where the rules live in nf_tables (iptables-nft, the
nftables backend) it also follows \`nft monitor\` and repairs outside changes
at once (DOCKFW_RULESET_WATCH=off: the periodic check alone). Logs JSON lines
to stdout (pretty when stdout is a terminal). SIGTERM or SIGINT stops it; the rules stay in place (new connections
to containers stay as they were; use \`dockfw uninstall\` to remove them).

${configHelp()}
`;

/** How long a stop may wait for a sync in progress. */
const STOP_GRACE_MS = 5000;

export async function run(argv: string[]): Promise<number> {
  // Before anything slow, so a stop during start-up is orderly too.
  const signals = installStopSignals();
  let config;
  try {
    const { values } = parse(argv, { ...CONFIG_OPTIONS, help: { type: 'boolean' } }, false);
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    config = configFrom(values);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw run: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  let docker;
  try {
    docker = createDockerClient(config.dockerHost);
  } catch (error) {
    process.stderr.write(`dockfw run: ${error instanceof Error ? error.message : String(error)}\n`);
    return 2;
  }
  const firewall = await createFirewall(config, docker, logger);
  // A taken DOCKFW_LISTEN address usually means another dockfw already runs here.
  const observability = await startObservability({
    config,
    logger,
    readCounters: (family, placement) => firewall.selected.counters(family, placement),
    version: version(),
  }).catch((error: unknown) => {
    process.stderr.write(
      `dockfw run: cannot listen on DOCKFW_LISTEN: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return undefined;
  });
  if (observability === undefined) return 1;
  // Not a Config setting: an escape hatch (and the bench's "periodic check only").
  const watchRuleset = process.env.DOCKFW_RULESET_WATCH !== 'off';
  // Own commits are known by the writer's pid, where pids are the kernel's (own-writers.ts).
  let ownWriters: OwnWriters | undefined;
  if (watchRuleset && inInitialPidNamespace()) {
    const writers = new OwnWriters();
    onWriteSpawned((pid) => writers.add(pid));
    ownWriters = writers;
  }
  const watchLogger = logger.child({ component: 'ruleset-watch' });
  const daemon = new Daemon({
    config,
    docker,
    firewall: firewall.sync,
    logger,
    clock: systemClock,
    observer: observability.observer,
    ...(watchRuleset
      ? { rulesetMonitor: nftMonitorSpawner({ warn: (message) => watchLogger.warn(message) }) }
      : {}),
    ...(ownWriters ? { ownWriter: (pid: number) => ownWriters.take(pid) } : {}),
  });
  daemon.start();
  logger.info({ signal: await signals.received }, 'stopping: rules stay in place');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all([daemon.stop(), observability.close()]),
    new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS))),
  ]);
  clearTimeout(timer);
  logger.flush();
  // Idle keep-alive sockets must not hold the process open after a stop.
  process.exit(0);
}
