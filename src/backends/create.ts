// The only place that knows the concrete backends: everything else gets a
// Firewall (or the selecting one `dockfw run` uses) from here. Where conntrack
// works, `dockfw run` cuts revoked connections after each sync (revocation.ts),
// and only then may established packets skip the lookups (the fast path).
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { Family } from '../docker/snapshot.js';
import type { DockerClient } from '../docker/docker-client.js';
import type { HostInterface } from '../policy/judge-flow.js';
import type { CommandRunner } from './command.js';
import { Conntrack } from './conntrack.js';
import type { BackendName, Firewall, FirewallSync, IptablesVariant } from './firewall.js';
import { DOCKER_USER, FORWARD, OWNED_PREFIX } from './iptables/chains.js';
import { runCommand, runCommandWarm } from './iptables/command.js';
import { IptablesFirewall } from './iptables/firewall.js';
import { readIptables } from './iptables/kernel-view.js';
import { readIpsetRecords } from './iptables/records.js';
import type { KernelView } from './kernel-check.js';
import { runNft, runNftWarm } from './nftables/command.js';
import { TABLE_NAME } from './nftables/names.js';
import { readTable } from './nftables/read.js';
import { readNftRecords } from './nftables/records.js';
import { NftablesFirewall } from './nftables/firewall.js';
import type { RecordSets } from './record-sets.js';
import { RevokingFirewall } from './revocation.js';
import { SelectedFirewall } from './select.js';

export interface BackendOptions {
  readonly dropRecords?: number;
  /** iptables: the variant `dockfw guard` writes with (default: the `iptables` on PATH). */
  readonly iptablesVariant?: IptablesVariant;
  readonly logger?: Logger;
  /** Established connections skip the lookups: only where revoked ones are cut. */
  readonly fastPath?: boolean;
  /** Writes go to a tool started ahead of them (`nft`, `ipset`: the daemon, whose writes follow events). */
  readonly warmWrites?: boolean;
}

/**
 * What dockfw owns in nf_tables, for a watch of `nft monitor`: its table (the
 * nftables backend), its chains' prefix and the chains its jump lives in (iptables-nft).
 */
export const OWNED_NAMES = {
  table: TABLE_NAME,
  chainPrefix: OWNED_PREFIX,
  parentChains: [DOCKER_USER, FORWARD],
} as const;

/** One backend, with the real tools. */
export function createBackend(name: BackendName, options: BackendOptions = {}): Firewall {
  const { logger, dropRecords } = options;
  if (name === 'nftables')
    return new NftablesFirewall({
      run: options.warmWrites === true ? runNftWarm : runNft,
      ...(dropRecords === undefined ? {} : { dropRecords }),
      ...(options.fastPath === true ? { fastPath: true } : {}),
    });
  return new IptablesFirewall({
    run: options.warmWrites === true ? runCommandWarm : runCommand,
    ...(dropRecords === undefined ? {} : { dropRecords }),
    ...(options.iptablesVariant ? { guardVariant: options.iptablesVariant } : {}),
    ...(options.fastPath === true ? { fastPath: true } : {}),
    onIpv6Unavailable: (error) =>
      logger?.warn({ error: error.message }, 'ip6tables not available: IPv6 not managed'),
    onRecordsUnavailable: (error) =>
      logger?.warn({ error: error.message }, 'cannot make the drop record ipset: drops are not recorded'),
  });
}

/** The kernel as `backend` holds it now, for `dockfw explain` to check its verdict against. */
export async function readKernelView(backend: BackendName, families: readonly Family[]): Promise<KernelView> {
  if (backend === 'nftables') return { backend, table: await readTable(runNft) };
  return readIptables(families);
}

/**
 * What `dockfw explain` compares a judgement with: the kernel view and its
 * check, spelled by each backend's own renderers (src/backends/kernel-check.ts).
 */
export {
  checkJudgement,
  overallStatus,
  type KernelCheck,
  type KernelStatus,
  type KernelView,
} from './kernel-check.js';

/**
 * A backend's drop records (nftables: its record sets in table inet dockfw;
 * iptables: the record ipsets). `run`: the tool runner (default: the real one).
 */
export function readBackendRecords(backend: BackendName, run?: CommandRunner): Promise<RecordSets> {
  if (backend === 'nftables') return readNftRecords(run ?? runNft);
  return readIpsetRecords(run ?? runCommand);
}

/** Every backend, for what must look everywhere (`dockfw uninstall`). */
export function createBackends(): readonly Firewall[] {
  return [createBackend('iptables'), createBackend('nftables')];
}

/** The host's interface addresses, as the revocation judge reads them. */
function hostInterfaces(): HostInterface[] {
  return Object.entries(networkInterfaces()).flatMap(([name, addresses]) =>
    (addresses ?? []).flatMap((a) => {
      const prefix = Number(a.cidr?.split('/')[1]);
      // Link-local IPv6 carries a zone; no published binding or source is one.
      if (a.cidr === null || !Number.isInteger(prefix) || a.scopeid) return [];
      return [
        { name, family: a.family === 'IPv4' ? (4 as const) : (6 as const), address: a.address, prefix },
      ];
    }),
  );
}

/**
 * Whether `dockfw run` here would cut revoked connections, and so write the fast
 * path: the connection table can be read (the tool installed, the kernel's
 * netlink interface there). `plan` asks it too, to print what run applies.
 */
export async function fastPathAvailable(
  conntrack: Conntrack = new Conntrack(),
  onUnusable: (error: unknown) => void = () => {},
): Promise<boolean> {
  return conntrack.list(4).then(
    () => true,
    (error: unknown) => {
      onUnusable(error);
      return false;
    },
  );
}

/** Can the connection table be read? Says why not, once. */
function conntrackWorks(conntrack: Conntrack, logger: Logger): Promise<boolean> {
  return fastPathAvailable(conntrack, (error) =>
    logger.warn(
      { error: error instanceof Error ? error.message : String(error) },
      'conntrack not usable: revoked connections are not cut, so every packet is judged (no fast path)',
    ),
  );
}

export interface RunFirewall {
  /** What the syncs write through: the selected backend, cutting revoked connections where it can. */
  readonly sync: FirewallSync;
  /** The selected backend itself (its counters, its choice). */
  readonly selected: SelectedFirewall;
}

/** The backends wired for `dockfw run`: the configured one, or for `auto` the one matching Docker's firewall. */
export async function createFirewall(
  config: Config,
  docker: DockerClient,
  logger: Logger,
  conntrack: Conntrack = new Conntrack(),
): Promise<RunFirewall> {
  const cut = await conntrackWorks(conntrack, logger);
  const options = { dropRecords: config.dropRecords, logger, fastPath: cut, warmWrites: true };
  const iptables = createBackend('iptables', options);
  const nftables = createBackend('nftables', options);
  const removes = (firewall: Firewall) => async () => (await firewall.uninstall()).length > 0;
  const selected = new SelectedFirewall({
    setting: config.backend,
    info: () => docker.info(),
    backends: {
      iptables: { firewall: iptables, remove: removes(iptables), counters: iptables.counters.bind(iptables) },
      nftables: { firewall: nftables, remove: removes(nftables), counters: nftables.counters.bind(nftables) },
    },
    onChosen: (backend, firewallBackend) =>
      logger.info(
        { backend, setting: config.backend, dockerFirewall: firewallBackend ?? 'unknown' },
        'firewall backend chosen',
      ),
    onOtherRemoved: (backend) => logger.info({ backend }, "removed the other backend's rules"),
  });
  if (!cut) return { sync: selected, selected };
  const sync = new RevokingFirewall({
    firewall: selected,
    connections: conntrack,
    interfaces: hostInterfaces,
    logger: logger.child({ component: 'revocation' }),
  });
  return { sync, selected };
}
