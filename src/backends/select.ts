// Which backend writes the rules: the configured one, or for `auto` the one the
// engine's own firewall uses (`GET /info` → FirewallBackend.Driver). The other
// backend's leftovers are removed once ours is in place, so switching backends
// never leaves two sets of rules (nor a moment with none).
import type { Config } from '../config/config.js';
import type { EngineInfo } from '../docker/docker-client.js';
import type { Family } from '../docker/snapshot.js';
import type { DesiredState } from '../policy/desired.js';
import { DockerUnavailableError } from '../runtime/sync.js';
import { CommandError } from './command.js';
import type {
  BackendName,
  FamilyCounters,
  FamilyReport,
  Firewall,
  FirewallSync,
  Placement,
  ReconcileOptions,
} from './firewall.js';

export type { BackendName };

/** nftables when asked for, or for `auto` when Docker's firewall is nftables (`nftables`, `nftables+firewalld`). */
export function chooseBackend(setting: Config['backend'], firewallBackend: string | undefined): BackendName {
  if (setting !== 'auto') return setting;
  return firewallBackend?.startsWith('nftables') === true ? 'nftables' : 'iptables';
}

export interface Backend {
  readonly firewall: FirewallSync;
  /** Removes everything this backend owns; resolves with whether there was anything. */
  remove(): Promise<boolean>;
  /** Its rule counters (absent: it keeps none). */
  readonly counters?: Firewall['counters'];
}

export interface SelectedFirewallOptions {
  readonly setting: Config['backend'];
  readonly info: () => Promise<EngineInfo>;
  readonly backends: Readonly<Record<BackendName, Backend>>;
  readonly onChosen?: (backend: BackendName, firewallBackend: string | undefined) => void;
  readonly onOtherRemoved?: (backend: BackendName) => void;
}

export class SelectedFirewall implements FirewallSync {
  private chosen: BackendName | undefined;
  private otherRemoved = false;

  constructor(private readonly options: SelectedFirewallOptions) {}

  /** The backend in use, once the first sync has chosen it. */
  get backend(): BackendName | undefined {
    return this.chosen;
  }

  async reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<readonly FamilyReport[]> {
    const name = this.chosen ?? (await this.choose());
    const reports = await this.options.backends[name].firewall.reconcile(desired, options);
    if (!this.otherRemoved) await this.removeOther(name);
    return reports;
  }

  /** The counters where `placement` says the rules are, from the backend that placed them. */
  counters(family: Family, placement: Placement): Promise<FamilyCounters | undefined> {
    const counters = this.options.backends[placement.kind].counters;
    return counters ? counters(family, placement) : Promise.resolve(undefined);
  }

  private async choose(): Promise<BackendName> {
    const { setting } = this.options;
    let firewallBackend: string | undefined;
    if (setting === 'auto') {
      firewallBackend = (
        await this.options.info().catch((error: unknown) => {
          throw new DockerUnavailableError(error);
        })
      ).firewallBackend;
    }
    this.chosen = chooseBackend(setting, firewallBackend);
    this.options.onChosen?.(this.chosen, firewallBackend);
    return this.chosen;
  }

  private async removeOther(chosen: BackendName): Promise<void> {
    const other: BackendName = chosen === 'iptables' ? 'nftables' : 'iptables';
    let removed = false;
    try {
      removed = await this.options.backends[other].remove();
    } catch (error) {
      // The other backend's tool is not installed: it cannot have left anything.
      if (!(error instanceof CommandError && error.missing)) throw error;
    }
    this.otherRemoved = true;
    if (removed) this.options.onOtherRemoved?.(other);
  }
}
