import { describe, expect, it } from 'vitest';
import type { EngineInfo } from '../docker/docker-client.js';
import type { DesiredState } from '../policy/desired.js';
import { DockerUnavailableError } from '../runtime/sync.js';
import { CommandError } from './command.js';
import type { FamilyReport } from './firewall.js';
import { chooseBackend, SelectedFirewall, type Backend, type BackendName } from './select.js';

const STATE: DesiredState = {
  rules: [],
  bindings: [],
  bridges: [],
  externalInterfaces: [],
  containers: [],
  errors: [],
};

function info(firewallBackend: string | undefined): EngineInfo {
  return { serverVersion: '29.0.0', apiVersion: '1.52', firewallBackend };
}

function recorder(log: string[], name: BackendName, remove: () => Promise<boolean>): Backend {
  return {
    firewall: {
      reconcile: () => {
        log.push(`${name}.reconcile`);
        return Promise.resolve([] as FamilyReport[]);
      },
    },
    remove: () => {
      log.push(`${name}.remove`);
      return remove();
    },
  };
}

describe('chooseBackend', () => {
  it.each([
    ['auto', 'nftables', 'nftables'],
    ['auto', 'nftables+firewalld', 'nftables'],
    ['auto', 'iptables', 'iptables'],
    ['auto', 'iptables+firewalld', 'iptables'],
    ['auto', undefined, 'iptables'],
    ['iptables', 'nftables', 'iptables'],
    ['nftables', 'iptables', 'nftables'],
  ] as const)('%s with Docker on %s → %s', (setting, driver, expected) => {
    expect(chooseBackend(setting, driver)).toBe(expected);
  });
});

describe('SelectedFirewall', () => {
  it('asks the engine once, writes with the chosen backend, then removes the other one once', async () => {
    const log: string[] = [];
    let asked = 0;
    const chosen: string[] = [];
    const removed: string[] = [];
    const firewall = new SelectedFirewall({
      setting: 'auto',
      info: () => {
        asked++;
        return Promise.resolve(info('nftables'));
      },
      backends: {
        iptables: recorder(log, 'iptables', () => Promise.resolve(true)),
        nftables: recorder(log, 'nftables', () => Promise.resolve(true)),
      },
      onChosen: (b, driver) => chosen.push(`${b} (${driver})`),
      onOtherRemoved: (b) => removed.push(b),
    });
    await firewall.reconcile(STATE);
    await firewall.reconcile(STATE);
    expect(asked).toBe(1);
    expect(firewall.backend).toBe('nftables');
    expect(log).toEqual(['nftables.reconcile', 'iptables.remove', 'nftables.reconcile']);
    expect(chosen).toEqual(['nftables (nftables)']);
    expect(removed).toEqual(['iptables']);
  });

  it('does not ask the engine when a backend is configured; a missing tool means nothing to remove', async () => {
    const log: string[] = [];
    const missing = new CommandError('nft not found', 'nft', [], '', true);
    const firewall = new SelectedFirewall({
      setting: 'iptables',
      info: () => Promise.reject(new Error('not expected')),
      backends: {
        iptables: recorder(log, 'iptables', () => Promise.resolve(false)),
        nftables: recorder(log, 'nftables', () => Promise.reject(missing)),
      },
    });
    await firewall.reconcile(STATE);
    await firewall.reconcile(STATE);
    expect(log).toEqual(['iptables.reconcile', 'nftables.remove', 'iptables.reconcile']);
  });

  it('tries again when the engine cannot say, or removing the other backend failed', async () => {
    const log: string[] = [];
    let infoFails = true;
    let removeFails = true;
    const firewall = new SelectedFirewall({
      setting: 'auto',
      info: () =>
        infoFails ? Promise.reject(new Error('connect ENOENT')) : Promise.resolve(info('iptables')),
      backends: {
        iptables: recorder(log, 'iptables', () => Promise.resolve(false)),
        nftables: recorder(log, 'nftables', () =>
          removeFails ? Promise.reject(new Error('nft: Operation not permitted')) : Promise.resolve(true),
        ),
      },
    });
    await expect(firewall.reconcile(STATE)).rejects.toBeInstanceOf(DockerUnavailableError);
    infoFails = false;
    await expect(firewall.reconcile(STATE)).rejects.toThrow(/not permitted/);
    removeFails = false;
    await firewall.reconcile(STATE);
    await firewall.reconcile(STATE);
    expect(log).toEqual([
      'iptables.reconcile',
      'nftables.remove',
      'iptables.reconcile',
      'nftables.remove',
      'iptables.reconcile',
    ]);
  });
});
