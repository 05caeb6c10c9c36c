import { describe, expect, it } from 'vitest';
import { ConfigError } from '../config/config.js';
import { daemonUrl, listenAddress } from './client.js';

describe('daemonUrl', () => {
  it.each([
    [{ host: '127.0.0.1', port: 9811 }, 'http://127.0.0.1:9811/status'],
    [{ host: '0.0.0.0', port: 9811 }, 'http://127.0.0.1:9811/status'],
    [{ host: '::', port: 1 }, 'http://[::1]:1/status'],
    [{ host: '2001:db8::5', port: 80 }, 'http://[2001:db8::5]:80/status'],
    [{ host: 'mgmt.example', port: 9811 }, 'http://mgmt.example:9811/status'],
  ])('%o → %s (a wildcard address means this host)', (listen, url) => {
    expect(daemonUrl(listen, '/status')).toBe(url);
  });
});

describe('listenAddress', () => {
  it('takes the flag, else DOCKFW_LISTEN, else the default; empty means off', () => {
    expect(listenAddress('[::1]:9000', { DOCKFW_LISTEN: '127.0.0.1:1' })).toEqual({
      host: '::1',
      port: 9000,
    });
    expect(listenAddress(undefined, { DOCKFW_LISTEN: '10.0.0.1:9811' })).toEqual({
      host: '10.0.0.1',
      port: 9811,
    });
    expect(listenAddress(undefined, {})).toEqual({ host: '127.0.0.1', port: 9811 });
    expect(listenAddress('', {})).toBeNull();
  });

  it('names the source of a bad address', () => {
    expect(() => listenAddress(undefined, { DOCKFW_LISTEN: 'nowhere' })).toThrow(ConfigError);
    expect(() => listenAddress(undefined, { DOCKFW_LISTEN: 'nowhere' })).toThrow(/^DOCKFW_LISTEN="nowhere"/);
    expect(() => listenAddress('1.2.3.4:99999', {})).toThrow(/^--listen=/);
  });
});
