import { healingSuite } from './healing-suite.js';

// Docker 28.5.2 with iptables-nft: dockfw's chains are in nf_tables, so `nft monitor` sees outside changes.
healingSuite('self-healing: Docker 28.5.2, iptables-nft', {
  engine: '28.5',
  iptables: 'nft',
  ipv6UserChain: true,
  watchesRuleset: true,
  burst: 50,
});
