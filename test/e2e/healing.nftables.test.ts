import { healingSuite } from './healing-suite.js';
import { nftablesFirewall } from './suite-firewall.js';

// DOCKFW_BACKEND=nftables (table inet dockfw) next to Docker 28.5.2's iptables-nft rules.
healingSuite('self-healing: Docker 28.5.2 (iptables-nft), nftables backend', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
  watchesRuleset: true,
  firewall: nftablesFirewall('iptables-nft'),
});
