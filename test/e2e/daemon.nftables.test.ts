import { daemonSuite } from './daemon-suite.js';
import { nftablesFirewall } from './suite-firewall.js';

// DOCKFW_BACKEND=nftables next to Docker 28.5.2's own iptables-nft rules (and the admin's DOCKER-USER rule).
daemonSuite('dockfw run: Docker 28.5.2 (iptables-nft), nftables backend', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
  firewall: nftablesFirewall('iptables-nft'),
});
