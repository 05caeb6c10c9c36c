/**
 * What the daemon suite reads and does to the kernel, per backend: the suite's
 * probes and flow are the same for iptables and nftables; only where dockfw's
 * rules live, how an admin adds a rule of their own, and how rules are damaged
 * differ. The Docker 29 layout also brings its fixture and the /info proxy.
 */
import path from 'node:path';
import { DOCKER29_DOCKERD_ARGS, Docker29Firewall } from '../host/docker29-fixture.js';
import type { TestHost } from '../host/index.js';
import { startInfoProxy, type InfoProxy } from '../host/info-proxy.js';

/** A container as the checks see it: its short id and its addresses now. */
export interface ContainerRef {
  readonly id12: string;
  readonly addresses: readonly string[];
}

/** dockfw's rules per family, as text to search. */
export interface OwnedText {
  readonly v4: string;
  readonly v6: string;
}

export interface SuiteFirewall {
  readonly backend: 'iptables' | 'nftables';
  /** Extra dockerd flags for the test host. */
  readonly dockerdArgs: readonly string[];
  /** After the host started: stand up what the layout needs. */
  setUp(host: TestHost): Promise<void>;
  tearDown(): Promise<void>;
  /** Environment for every dockfw process (DOCKER_HOST of a proxy, …). */
  dockfwEnv(): Record<string, string>;
  /** Resolves once the engine's own firewall has caught up with Docker (fixtures only). */
  settled(): Promise<void>;
  /** The admin's own rule dropping `blocked4` / `blocked6`, where an admin of this host would put it. */
  addAdminRule(host: TestHost, blocked4: string, blocked6: string): Promise<void>;
  /** The admin's rule is still there, once, unchanged. */
  adminRuleIntact(host: TestHost): Promise<boolean>;
  owned(host: TestHost): Promise<OwnedText>;
  /** dockfw's rules judge this container (any of its addresses). */
  judges(text: string, container: ContainerRef): boolean;
  /** dockfw's rules name this address at all. */
  mentions(text: string, address: string): boolean;
  /** This address/port is closed to everyone by dockfw. */
  closes(text: string, address: string, port: number): boolean;
  /** This address/port is allowed from this source. */
  allows(text: string, address: string, port: number, source: string): boolean;
  /** The rule list, to compare before/after (order kept). */
  ruleLines(text: string): string[];
  /** Only packets arriving on `iface` are judged. */
  judgesOnly(text: string, iface: string): boolean;
  /** Breaks dockfw's rules like an outside flush would; says what the drift log must name. */
  damage(host: TestHost): Promise<{ added: number; missing: string }>;
  /** Everything in the kernel that is not dockfw's (for "uninstall touches nothing else"). */
  others(host: TestHost): Promise<string[]>;
  /** Anything of dockfw's left in the kernel. */
  anyOwned(host: TestHost): Promise<boolean>;
}

function lines(text: string, prefix: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(prefix));
}

function hostBits(address: string): string {
  return address.includes(':') ? `${address}/128` : `${address}/32`;
}

/** dockfw's chains in DOCKER-USER's table (iptables-nft or legacy, as the host uses). */
export function iptablesFirewall(ipv6UserChain: boolean): SuiteFirewall {
  const parentV6 = ipv6UserChain ? 'DOCKER-USER' : 'FORWARD';
  let rule4 = '';
  let rule6 = '';
  const save = (host: TestHost, family: 4 | 6) => host.iptablesSave(family, 'filter');
  const sets = async (host: TestHost, family: 4 | 6) => {
    const texts = await Promise.all(
      ['allowed', 'guarded', 'bound', 'boundip', 'boundany'].map(
        async (role) => (await host.exec('ipset', ['save', `dockfw-${role}${family}`])).stdout,
      ),
    );
    return `${texts.join('\n')}\n`;
  };
  return {
    backend: 'iptables',
    dockerdArgs: [],
    setUp: () => Promise.resolve(),
    tearDown: () => Promise.resolve(),
    dockfwEnv: () => ({}),
    settled: () => Promise.resolve(),
    async addAdminRule(host, blocked4, blocked6) {
      rule4 = `-s ${blocked4}/32 -m comment --comment admin-rule -j DROP`;
      rule6 = `-s ${blocked6}/128 -m comment --comment admin-rule -j DROP`;
      await host.iptables(4, ['-I', 'DOCKER-USER', ...rule4.split(' ')]);
      await host.iptables(6, ['-I', parentV6, ...rule6.split(' ')]);
    },
    async adminRuleIntact(host) {
      const [v4, v6] = await Promise.all([save(host, 4), save(host, 6)]);
      return (
        lines(v4, `-A DOCKER-USER ${rule4}`).length === 1 && lines(v6, `-A ${parentV6} ${rule6}`).length === 1
      );
    },
    async owned(host) {
      // Both tables dockfw writes: mangle (published bindings) and filter, and the sets they look up.
      const both = async (family: 4 | 6) =>
        (await host.iptablesSave(family, 'mangle')) + (await save(host, family)) + (await sets(host, family));
      const [v4, v6] = await Promise.all([both(4), both(6)]);
      return { v4, v6 };
    },
    // The verdicts are elements of dockfw's sets (container address,proto:port[,source]).
    judges: (text, container) => container.addresses.some((a) => containerElements(text, a).length > 0),
    mentions: (text, address) => containerElements(text, address).length > 0,
    closes: (text, address, port) =>
      containerElements(text, address).some((e) => e.set.startsWith('dockfw-guarded') && e.port === port),
    allows: (text, address, port, source) =>
      containerElements(text, address).some(
        (e) =>
          e.set.startsWith('dockfw-allowed') &&
          e.port === port &&
          (e.source === source || e.source === hostBits(source)),
      ),
    ruleLines: (text) => lines(text, '-A DOCKFW'),
    judgesOnly: (text, iface) =>
      JSON.stringify(lines(text, '-A DOCKFW ')) === JSON.stringify([`-A DOCKFW -i ${iface} -j DOCKFW-IN`]),
    async damage(host) {
      const added = lines(await save(host, 4), '-A DOCKFW-IN ').length;
      await host.flushChain('DOCKFW-IN', [4]);
      return { added, missing: 'DOCKFW-IN -m conntrack --ctdir REPLY -j RETURN' };
    },
    async others(host) {
      const [v4, v6] = await Promise.all([save(host, 4), save(host, 6)]);
      return [v4, v6].flatMap((t) =>
        t
          .split('\n')
          .filter((l) => (l.startsWith('-A') || l.startsWith(':')) && !l.includes('DOCKFW'))
          .map((l) => l.replace(/ \[\d+:\d+\]$/, '')),
      );
    },
    async anyOwned(host) {
      const tables = await Promise.all(
        ([4, 6] as const).flatMap((family) => [save(host, family), host.iptablesSave(family, 'mangle')]),
      );
      return tables.some((text) => text.includes('DOCKFW'));
    },
  };
}

/** Elements of dockfw's container sets for one address, as `ipset save` prints them. */
function containerElements(
  text: string,
  address: string,
): { set: string; port: number; source: string | undefined }[] {
  return text
    .split('\n')
    .map((l) => /^add (dockfw-(?:allowed|guarded)[46]) (\S+)$/.exec(l.trim()))
    .flatMap((m) => {
      if (m === null) return [];
      const [target = '', service = '', source] = (m[2] ?? '').split(',');
      if (target !== address) return [];
      return [{ set: m[1] ?? '', port: Number(service.split(':')[1]), source }];
    });
}

const ADMIN_TABLE = 'inet admin';

/** An element line of one of dockfw's sets, as `nft list table` prints it. */
function elementLines(text: string, set: string): string[] {
  const body = new RegExp(`set ${set} \\{[^}]*?elements = \\{([^}]*)\\}`).exec(text)?.[1] ?? '';
  return body
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

function portCovers(field: string, port: number): boolean {
  const [from = '', to = from] = field.split('-');
  return Number(from) <= port && port <= Number(to);
}

/**
 * dockfw's `table inet dockfw`. On Docker 28.5 (`layout: 'iptables-nft'`)
 * Docker's own rules are iptables-nft and the admin's rule is in DOCKER-USER;
 * on the Docker 29 layout there is no DOCKER-USER, so the admin's rule is a
 * table of their own, and /info comes through the proxy saying nftables.
 */
export function nftablesFirewall(layout: 'iptables-nft' | 'docker29'): SuiteFirewall {
  let fixture: Docker29Firewall | undefined;
  let proxy: InfoProxy | undefined;
  let admin4 = '';
  const list = async (host: TestHost) =>
    (await host.exec('nft', ['list', 'table', 'inet', 'dockfw'])).stdout.replace(
      /counter packets \d+ bytes \d+/g,
      'counter',
    );
  const familyOf = (address: string): '4' | '6' => (address.includes(':') ? '6' : '4');
  const judged = (text: string, set: string, address: string, port: number) =>
    elementLines(text, `${set}${familyOf(address)}`).filter((e) => {
      const [a, , ports = ''] = e.split(' . ');
      return a === address && portCovers(ports, port);
    });
  const ruleset = async (host: TestHost) =>
    (await host.nft(['list', 'ruleset'])).replace(/packets \d+ bytes \d+/g, '');
  return {
    backend: 'nftables',
    dockerdArgs: layout === 'docker29' ? DOCKER29_DOCKERD_ARGS : [],
    async setUp(host) {
      if (layout !== 'docker29') return;
      fixture = new Docker29Firewall(host);
      await fixture.start();
      proxy = await startInfoProxy(host.socket, path.join(host.layout.dir, 'info.sock'));
    },
    async tearDown() {
      fixture?.stop();
      await proxy?.close();
    },
    dockfwEnv: () =>
      layout === 'docker29'
        ? { DOCKER_HOST: proxy?.dockerHost ?? '' }
        : // Docker 28.5 says "iptables": ask for nftables explicitly.
          { DOCKFW_BACKEND: 'nftables' },
    settled: () => fixture?.settled() ?? Promise.resolve(),
    async addAdminRule(host, blocked4, blocked6) {
      admin4 = blocked4;
      if (layout === 'iptables-nft') {
        await host.iptables(4, ['-I', 'DOCKER-USER', '-s', `${blocked4}/32`, '-j', 'DROP']);
        await host.iptables(6, ['-I', 'DOCKER-USER', '-s', `${blocked6}/128`, '-j', 'DROP']);
        return;
      }
      const result = await host.exec('nft', ['-f', '-'], {
        input: [
          `table ${ADMIN_TABLE} {`,
          '\tchain forward {',
          '\t\ttype filter hook forward priority 0; policy accept;',
          `\t\tip saddr ${blocked4} drop comment "admin-rule"`,
          `\t\tip6 saddr ${blocked6} drop comment "admin-rule"`,
          '\t}',
          '}',
          '',
        ].join('\n'),
      });
      if (result.exitCode !== 0) throw new Error(`admin table: ${result.stderr}`);
    },
    async adminRuleIntact(host) {
      if (layout === 'iptables-nft') {
        const v4 = await host.iptablesSave(4, 'filter');
        return lines(v4, `-A DOCKER-USER -s ${admin4}/32 -j DROP`).length === 1;
      }
      const admin = await host.exec('nft', ['list', 'table', 'inet', 'admin']);
      return admin.exitCode === 0 && (admin.stdout.match(/admin-rule/g) ?? []).length === 2;
    },
    async owned(host) {
      // One table for both families; each family's sets are searched by address family.
      const text = await list(host);
      return { v4: text, v6: text };
    },
    judges: (text, container) => container.addresses.some((a) => text.includes(`${a} . `)),
    mentions: (text, address) => text.includes(`${address} . `),
    closes: (text, address, port) =>
      judged(text, 'guarded', address, port).length > 0 &&
      judged(text, 'allowed', address, port).length === 0,
    allows: (text, address, port, source) =>
      judged(text, 'allowed', address, port).some((e) => e.split(' . ')[3] === source),
    // The chain's rules in order, then each set's elements sorted (the kernel lists them in its own order).
    ruleLines: (text) => {
      const chain = /chain forward \{([^}]*)\}/.exec(text)?.[1] ?? '';
      const rules = chain
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '');
      const sets = ['bridges', 'outside', 'allowed4', 'guarded4', 'allowed6', 'guarded6'];
      return [
        ...rules,
        ...sets.flatMap((set) =>
          elementLines(text, set)
            .sort()
            .map((e) => `${set}: ${e}`),
        ),
      ];
    },
    judgesOnly: (text, iface) =>
      text.includes('iifname != @outside return') &&
      JSON.stringify(elementLines(text, 'outside')) === JSON.stringify([`"${iface}"`]),
    async damage(host) {
      // Counted, not assumed: the fast path (where conntrack works) adds rules to the chain.
      const chain = await host.nft(['list', 'chain', 'inet', 'dockfw', 'forward']);
      const added = chain.split('\n').filter((l) => l.includes('comment "dockfw ')).length;
      await host.nft(['flush', 'chain', 'inet', 'dockfw', 'forward']);
      return { added, missing: 'rule dockfw catch-all' };
    },
    async others(host) {
      const text = await ruleset(host);
      // Everything but dockfw's table (it is listed last of its own).
      return text
        .split(/^table /m)
        .filter((t) => !t.startsWith('inet dockfw '))
        .map((t) => t.trim());
    },
    async anyOwned(host) {
      return (await host.nft(['list', 'tables'])).includes('table inet dockfw');
    },
  };
}
