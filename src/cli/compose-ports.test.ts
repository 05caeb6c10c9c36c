import { describe, expect, it } from 'vitest';
import { composePublished } from './compose-ports.js';

describe('composePublished', () => {
  it.each([
    [['80'], [{ from: 80, to: 80, protocol: 'tcp' }]],
    [[80], [{ from: 80, to: 80, protocol: 'tcp' }]],
    [['8443:443'], [{ from: 443, to: 443, protocol: 'tcp' }]],
    [['127.0.0.1:8080:80/udp'], [{ from: 80, to: 80, protocol: 'udp' }]],
    [['127.0.0.1::80'], [{ from: 80, to: 80, protocol: 'tcp' }]],
    [['[::1]:9000-9002:7000-7002/sctp'], [{ from: 7000, to: 7002, protocol: 'sctp' }]],
    [[{ target: 53, published: '53', protocol: 'udp' }], [{ from: 53, to: 53, protocol: 'udp' }]],
    [[{ target: '80' }], [{ from: 80, to: 80, protocol: 'tcp' }]],
    [undefined, []],
  ])('%j', (ports, ranges) => {
    expect(composePublished(ports)).toEqual(ranges);
  });

  it.each([[['${PORT}']], [['80', '${PORT}']], [['70000']], [['90-80']], [[{ published: 80 }]], ['80:80']])(
    'gives up on %j',
    (ports) => {
      expect(composePublished(ports)).toBeUndefined();
    },
  );
});
