import { daemonSuite } from './daemon-suite.js';

// Docker 20.10: DOCKER-USER ends with -j RETURN, no IPv6 DOCKER-USER (jump in ip6tables FORWARD).
daemonSuite('dockfw run: Docker 20.10, iptables-nft', {
  engine: '20.10',
  iptables: 'nft',
  ipv6UserChain: false,
});
