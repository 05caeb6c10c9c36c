import { healingSuite } from './healing-suite.js';

// Docker 28.5.2 with iptables-legacy: nft monitor sees nothing, the periodic check finds drift.
healingSuite('self-healing: Docker 28.5.2, iptables-legacy', {
  engine: '28.5',
  iptables: 'legacy',
  ipv6UserChain: true,
  watchesRuleset: false,
});
