import { harnessSuite } from './harness-suite.js';

harnessSuite('test host: Docker 20.10, iptables-nft', { engine: '20.10', iptables: 'nft' });
