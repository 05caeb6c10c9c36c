import { daemonSuite } from './daemon-suite.js';

daemonSuite('dockfw run: Docker 28.5.2, iptables-nft', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
});
