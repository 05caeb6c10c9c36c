import { healingSuite } from './healing-suite.js';

// Docker 20.10 (iptables-nft): no IPv6 DOCKER-USER, DOCKER-USER ends with -j RETURN.
healingSuite('self-healing: Docker 20.10, iptables-nft', {
  engine: '20.10',
  iptables: 'nft',
  ipv6UserChain: false,
  watchesRuleset: true,
});
