// The real backends wired for `dockfw run`: the configured one, or for `auto`
// the one matching Docker's firewall (see select.ts).
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { DockerClient } from '../docker/docker-client.js';
import { runCommand } from './iptables/command.js';
import { IptablesReconciler } from './iptables/reconcile.js';
import { uninstall as uninstallIptables } from './iptables/uninstall.js';
import { runNft } from './nftables/command.js';
import { NftablesReconciler } from './nftables/reconcile.js';
import { uninstallNftables } from './nftables/uninstall.js';
import { SelectedFirewall } from './select.js';

export function createFirewall(config: Config, docker: DockerClient, logger: Logger): SelectedFirewall {
  const iptables = new IptablesReconciler({
    run: runCommand,
    onIpv6Unavailable: (error) =>
      logger.warn({ error: error.message }, 'ip6tables not available: IPv6 not managed'),
    dropRecords: config.dropRecords,
    onRecordsUnavailable: (error) =>
      logger.warn({ error: error.message }, 'cannot make the drop record ipset: drops are not recorded'),
  });
  const nftables = new NftablesReconciler({ run: runNft, dropRecords: config.dropRecords });
  return new SelectedFirewall({
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
}
