import { pathsSuite } from './paths-suite.js';

// Docker 28.5.2 with iptables-legacy: `nft flush ruleset` leaves Docker's (legacy) DNAT alone.
pathsSuite('every path, every moment: Docker 28.5.2, iptables-legacy', {
  engine: '28.5',
  iptables: 'legacy',
  ipv6UserChain: true,
  dockerInNftables: false,
});
