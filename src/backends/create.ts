// The real backends wired for `dockfw run`: the configured one, or for `auto`
// the one matching Docker's firewall (see select.ts). Where conntrack works,
// revoked connections are cut after each sync (src/runtime/revocation.ts), and
// only then may established packets skip the lookups (the fast path).
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { DockerClient } from '../docker/docker-client.js';
import { runCommand } from './iptables/command.js';
import { IptablesReconciler } from './iptables/reconcile.js';
import { uninstall as uninstallIptables } from './iptables/uninstall.js';
import { runNft } from './nftables/command.js';
import { NftablesReconciler } from './nftables/reconcile.js';
import { uninstallNftables } from './nftables/uninstall.js';
import type { HostInterface } from '../policy/judge-flow.js';
import { RevokingFirewall } from '../runtime/revocation.js';
import type { Firewall } from '../runtime/sync.js';
import { Conntrack } from './conntrack.js';
import { SelectedFirewall } from './select.js';

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

/** Can the connection table be read (the tool installed, the kernel's netlink interface there)? */
async function conntrackWorks(conntrack: Conntrack, logger: Logger): Promise<boolean> {
  try {
    await conntrack.list(4);
    return true;
  } catch (error) {
    logger.warn(
      { error: error instanceof Error ? error.message : String(error) },
      'conntrack not usable: revoked connections are not cut, so every packet is judged (no fast path)',
    );
    return false;
  }
}

export async function createFirewall(
  config: Config,
  docker: DockerClient,
  logger: Logger,
  conntrack: Conntrack = new Conntrack(),
): Promise<Firewall> {
  const cut = await conntrackWorks(conntrack, logger);
  const iptables = new IptablesReconciler({
    run: runCommand,
    onIpv6Unavailable: (error) =>
      logger.warn({ error: error.message }, 'ip6tables not available: IPv6 not managed'),
    dropRecords: config.dropRecords,
    onRecordsUnavailable: (error) =>
      logger.warn({ error: error.message }, 'cannot make the drop record ipset: drops are not recorded'),
  });
  const nftables = new NftablesReconciler({ run: runNft, dropRecords: config.dropRecords, fastPath: cut });
  const selected = new SelectedFirewall({
    setting: config.backend,
    info: () => docker.info(),
    backends: {
      iptables: {
        firewall: iptables,
        remove: async () => (await uninstallIptables({ run: runCommand })).length > 0,
      },
      nftables: { firewall: nftables, remove: async () => (await uninstallNftables(runNft)).removed },
    },
    onChosen: (backend, firewallBackend) =>
      logger.info(
        { backend, setting: config.backend, dockerFirewall: firewallBackend ?? 'unknown' },
        'firewall backend chosen',
      ),
    onOtherRemoved: (backend) => logger.info({ backend }, "removed the other backend's rules"),
  });
  if (!cut) return selected;
  return new RevokingFirewall({
    firewall: selected,
    connections: conntrack,
    interfaces: hostInterfaces,
    logger: logger.child({ component: 'revocation' }),
  });
}
