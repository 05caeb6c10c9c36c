import { pathsSuite } from './paths-suite.js';

// Docker 28.5.2 with iptables-nft: Docker's rules are in nf_tables, so `nft flush ruleset` takes its DNAT.
pathsSuite('every path, every moment: Docker 28.5.2, iptables-nft', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
  dockerInNftables: true,
});
