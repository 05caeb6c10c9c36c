import { pathsSuite } from './paths-suite.js';

// Docker 20.10 (iptables-nft, --experimental --ip6tables): no IPv6 DOCKER-USER.
pathsSuite('every path, every moment: Docker 20.10, iptables-nft', {
  engine: '20.10',
  iptables: 'nft',
  ipv6UserChain: false,
  dockerInNftables: true,
});
