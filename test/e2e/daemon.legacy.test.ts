import { daemonSuite } from './daemon-suite.js';

daemonSuite('dockfw run: Docker 28.5.2, iptables-legacy', {
  engine: '28.5',
  iptables: 'legacy',
  ipv6UserChain: true,
});
