import { healingSuite } from './healing-suite.js';
import { nftablesFirewall } from './suite-firewall.js';

// Docker 29's nftables layout (fixture) with /info saying nftables: `auto` picks the nftables backend.
healingSuite('self-healing: Docker 29 nftables layout, auto backend', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
  watchesRuleset: true,
  firewall: nftablesFirewall('docker29'),
});
