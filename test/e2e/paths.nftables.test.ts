import { pathsSuite } from './paths-suite.js';
import { nftablesFirewall } from './suite-firewall.js';

// DOCKFW_BACKEND=nftables (table inet dockfw) next to Docker 28.5.2's iptables-nft rules.
pathsSuite('every path, every moment: Docker 28.5.2 (iptables-nft), nftables backend', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
  dockerInNftables: true,
  firewall: nftablesFirewall('iptables-nft'),
});
