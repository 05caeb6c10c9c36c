import { harnessSuite } from './harness-suite.js';

harnessSuite('test host: Docker 28.5.2, iptables-legacy', { engine: '28.5', iptables: 'legacy' });
