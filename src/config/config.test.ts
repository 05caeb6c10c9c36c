import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, loadConfig } from './config.js';

function error(env: Record<string, string>, flags = {}): string {
  try {
    loadConfig(env, flags);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has defaults', () => {
    expect(defaultConfig()).toEqual({
      dockerHost: 'unix:///var/run/docker.sock',
      backend: 'auto',
      externalInterfaces: [],
      defaultPolicy: 'allow',
      resync: '* * * * *',
      listen: { host: '127.0.0.1', port: 9811 },
      dropRecords: 65536,
      logDrops: false,
      logLevel: 'info',
    });
  });

  it('reads the environment; flags win', () => {
    const config = loadConfig(
      {
        DOCKER_HOST: 'tcp://127.0.0.1:2375',
        DOCKFW_BACKEND: 'iptables',
        DOCKFW_EXTERNAL_INTERFACES: ' eth1, eth0 ,eth1',
        DOCKFW_DEFAULT_POLICY: 'deny',
        DOCKFW_RESYNC: '*/30 * * * * *',
        DOCKFW_LISTEN: '[::1]:9900',
        DOCKFW_LOG_LEVEL: 'debug',
        DOCKFW_DROP_RECORDS: '1024',
        DOCKFW_LOG_DROPS: 'on',
      },
      { backend: 'nftables', listen: '' },
    );
    expect(config).toEqual({
      dockerHost: 'tcp://127.0.0.1:2375',
      backend: 'nftables',
      externalInterfaces: ['eth0', 'eth1'],
      defaultPolicy: 'deny',
      resync: '*/30 * * * * *',
      listen: null,
      dropRecords: 1024,
      logDrops: true,
      logLevel: 'debug',
    });
  });

  it('treats an empty variable as unset, except where empty means off', () => {
    const config = loadConfig({ DOCKER_HOST: '', DOCKFW_DEFAULT_POLICY: ' ', DOCKFW_LISTEN: '' });
    expect(config.dockerHost).toBe('unix:///var/run/docker.sock');
    expect(config.defaultPolicy).toBe('allow');
    expect(config.listen).toBeNull();
  });

  it.each([
    ['localhost:80', { host: 'localhost', port: 80 }],
    ['0.0.0.0:9811', { host: '0.0.0.0', port: 9811 }],
    ['[::]:9811', { host: '::', port: 9811 }],
  ])('listen %s', (text, listen) => {
    expect(loadConfig({ DOCKFW_LISTEN: text }).listen).toEqual(listen);
  });

  it.each([
    [{ DOCKFW_BACKEND: 'ufw' }, 'DOCKFW_BACKEND="ufw"'],
    [{ DOCKFW_DEFAULT_POLICY: 'open' }, 'DOCKFW_DEFAULT_POLICY="open"'],
    [{ DOCKFW_EXTERNAL_INTERFACES: 'eth0;reboot' }, 'interface names are 1-15 characters'],
    [{ DOCKFW_EXTERNAL_INTERFACES: 'averyveryverylongname' }, 'interface names are 1-15 characters'],
    [{ DOCKFW_EXTERNAL_INTERFACES: 'eth0,,eth1' }, 'DOCKFW_EXTERNAL_INTERFACES'],
    [{ DOCKFW_RESYNC: 'every minute' }, 'DOCKFW_RESYNC="every minute": not a valid cron expression'],
    [{ DOCKFW_LISTEN: '9811' }, 'DOCKFW_LISTEN="9811": expected host:port'],
    [{ DOCKFW_LISTEN: '127.0.0.1:99999' }, 'DOCKFW_LISTEN'],
    [{ DOCKFW_LISTEN: '::1:9811' }, 'DOCKFW_LISTEN'],
    [{ DOCKFW_LOG_LEVEL: 'loud' }, 'DOCKFW_LOG_LEVEL="loud"'],
    [{ DOCKER_HOST: '/var/run/docker.sock' }, 'DOCKER_HOST="/var/run/docker.sock"'],
  ])('rejects %j', (env, message) => {
    expect(error(env)).toContain(message);
  });

  it('names the flag when the flag was wrong, and lists every problem', () => {
    const message = error({ DOCKFW_LOG_LEVEL: 'loud' }, { backend: 'pf' });
    expect(message).toContain('--backend="pf"');
    expect(message).toContain('DOCKFW_LOG_LEVEL="loud"');
  });
});
