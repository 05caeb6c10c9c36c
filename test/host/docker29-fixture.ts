/**
 * Docker 29's nftables firewall, stood up on a Docker 28.5.2 test engine that
 * makes no rules itself (start it with DOCKER29_DOCKERD_ARGS). The fixture
 * follows the engine's events and after every change loads the tables Docker
 * 29 builds (`ip docker-bridges`, `ip6 docker-bridges`: verdict maps per bridge,
 * DNAT of published ports, per-bridge forward chains with the published-port
 * accept and the final drop, masquerade, raw direct-access drops) with the
 * containers' real addresses, so packets take the path they take on Docker 29.
 *
 * Differences from the real engine: the tables are replaced whole in one batch
 * (Docker rewrites single chains), and the rules follow the container's start
 * by one event round-trip (Docker writes them before the start returns).
 * Without the userland proxy the fixture also DNATs the host's loopback
 * connections (route_localnet) and masquerades the host's own connections into
 * the bridge, as Docker's iptables layout does then; Docker 29's exact rules
 * for that case were not checked.
 */
import http from 'node:http';
import { dockerGet } from './docker-api.js';
import type { TestHost } from './test-host.js';

/** dockerd flags for a Docker 28.5.2 engine that leaves the firewall to the fixture. */
export const DOCKER29_DOCKERD_ARGS = ['--iptables=false', '--ip6tables=false', '--userland-proxy=false'];

export interface Docker29Network {
  readonly bridge: string;
  readonly subnets: { readonly 4: readonly string[]; readonly 6: readonly string[] };
}

export interface Docker29Publication {
  readonly hostIp: string;
  readonly hostPort: number;
  readonly containerPort: number;
  readonly protocol: 'tcp' | 'udp' | 'sctp';
}

export interface Docker29Endpoint {
  readonly bridge: string;
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
}

export interface Docker29Container {
  /** Every bridge endpoint; the first one receives the published ports. */
  readonly endpoints: readonly Docker29Endpoint[];
  readonly ports: readonly Docker29Publication[];
}

export interface Docker29View {
  readonly networks: readonly Docker29Network[];
  readonly containers: readonly Docker29Container[];
}

type NftFamily = 'ip' | 'ip6';

const quote = (name: string): string => `"${name}"`;

function addressOf(endpoint: Docker29Endpoint, family: NftFamily): string | undefined {
  return family === 'ip' ? endpoint.ipv4 : endpoint.ipv6;
}

/** Does a publication's host address apply to this family? '' and the wildcards do to their own. */
function publishedIn(hostIp: string, family: NftFamily): { applies: boolean; daddr: string | undefined } {
  if (hostIp === '') return { applies: true, daddr: undefined };
  if (hostIp === '0.0.0.0') return { applies: family === 'ip', daddr: undefined };
  if (hostIp === '::') return { applies: family === 'ip6', daddr: undefined };
  const isV6 = hostIp.includes(':');
  return { applies: isV6 === (family === 'ip6'), daddr: hostIp };
}

/** The ruleset of one family's `docker-bridges` table as one `nft -f` batch (replaces the table). */
export function renderDocker29Table(view: Docker29View, family: NftFamily): string {
  const ipKw = family;
  const bridges = view.networks.map((n) => n.bridge);
  const map = (name: string, prefix: string): string[] => [
    `\tmap ${name} {`,
    '\t\ttype ifname : verdict',
    ...(bridges.length === 0
      ? []
      : [`\t\telements = { ${bridges.map((b) => `${quote(b)} : jump ${prefix}__${b}`).join(', ')} }`]),
    '\t}',
  ];
  const dnat: string[] = [];
  const rawDrops: string[] = [];
  const accepts = new Map<string, string[]>(bridges.map((b) => [b, []]));
  const seenDnat = new Set<string>();
  for (const container of view.containers) {
    for (const endpoint of container.endpoints) {
      const address = addressOf(endpoint, family);
      if (address !== undefined)
        rawDrops.push(
          `\t\t${ipKw} daddr ${address} iifname != ${quote(endpoint.bridge)} counter drop comment "DROP DIRECT ACCESS"`,
        );
    }
    const primary = container.endpoints[0];
    const target = primary && addressOf(primary, family);
    if (primary === undefined || target === undefined) continue;
    for (const port of container.ports) {
      const where = publishedIn(port.hostIp, family);
      if (!where.applies) continue;
      const key = `${where.daddr ?? '*'} ${port.protocol} ${port.hostPort}`;
      if (seenDnat.has(key)) continue;
      seenDnat.add(key);
      const daddr = where.daddr === undefined ? '' : `${ipKw} daddr ${where.daddr} `;
      const to = family === 'ip' ? `${target}:${port.containerPort}` : `[${target}]:${port.containerPort}`;
      dnat.push(
        `\t\t${daddr}iifname != ${quote(primary.bridge)} ${port.protocol} dport ${port.hostPort} counter dnat to ${to} comment "DNAT"`,
      );
      accepts
        .get(primary.bridge)
        ?.push(`\t\t${ipKw} daddr ${target} ${port.protocol} dport ${port.containerPort} counter accept`);
    }
  }
  const loopback = family === 'ip' ? '' : 'ip6 daddr != ::1 ';
  const perBridge = view.networks.flatMap((network) => {
    const b = network.bridge;
    const subnets = network.subnets[family === 'ip' ? 4 : 6];
    return [
      `\tchain filter-forward-in__${b} {`,
      '\t\tct state established,related counter accept',
      `\t\tiifname ${quote(b)} counter accept comment "ICC"`,
      ...[...new Set(accepts.get(b) ?? [])],
      '\t\tcounter drop comment "UNPUBLISHED PORT DROP"',
      '\t}',
      `\tchain filter-forward-out__${b} {`,
      '\t\tct state established,related counter accept',
      '\t\tcounter accept comment "OUTGOING"',
      '\t}',
      `\tchain nat-postrouting-out__${b} {`,
      ...subnets.map(
        (s) => `\t\toifname != ${quote(b)} ${ipKw} saddr ${s} counter masquerade comment "MASQUERADE"`,
      ),
      '\t}',
      // Without the userland proxy, the host's own connections to a published
      // port are DNATed too and need a source the container can answer.
      `\tchain nat-postrouting-in__${b} {`,
      '\t\tfib saddr type local counter masquerade comment "MASQ TO BRIDGE"',
      '\t}',
    ];
  });
  const lines = [
    `add table ${family} docker-bridges`,
    `delete table ${family} docker-bridges`,
    `table ${family} docker-bridges {`,
    ...map('filter-forward-in-jumps', 'filter-forward-in'),
    ...map('filter-forward-out-jumps', 'filter-forward-out'),
    ...map('nat-postrouting-in-jumps', 'nat-postrouting-in'),
    ...map('nat-postrouting-out-jumps', 'nat-postrouting-out'),
    ...perBridge,
    '\tchain nat-prerouting-and-output {',
    ...dnat,
    '\t}',
    '\tchain filter-FORWARD {',
    '\t\ttype filter hook forward priority 0; policy accept;',
    '\t\toifname vmap @filter-forward-in-jumps',
    '\t\tiifname vmap @filter-forward-out-jumps',
    '\t}',
    '\tchain nat-PREROUTING {',
    '\t\ttype nat hook prerouting priority -100; policy accept;',
    '\t\tfib daddr type local counter jump nat-prerouting-and-output',
    '\t}',
    '\tchain nat-OUTPUT {',
    '\t\ttype nat hook output priority -100; policy accept;',
    `\t\t${loopback}fib daddr type local counter jump nat-prerouting-and-output`,
    '\t}',
    '\tchain nat-POSTROUTING {',
    '\t\ttype nat hook postrouting priority 100; policy accept;',
    '\t\tiifname vmap @nat-postrouting-out-jumps',
    '\t\toifname vmap @nat-postrouting-in-jumps',
    '\t}',
    '\tchain raw-PREROUTING {',
    '\t\ttype filter hook prerouting priority -300; policy accept;',
    ...rawDrops,
    '\t}',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

interface ApiNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Options?: Record<string, string> | null;
  IPAM?: { Config?: { Subnet?: string }[] | null } | null;
}

interface ApiContainer {
  Ports?: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[];
  HostConfig?: { NetworkMode?: string };
  NetworkSettings?: {
    Networks?: Record<string, { NetworkID?: string; IPAddress?: string; GlobalIPv6Address?: string }>;
  };
}

function bridgeOf(network: ApiNetwork): string | undefined {
  if (network.Driver !== 'bridge') return undefined;
  return (
    network.Options?.['com.docker.network.bridge.name'] ??
    (network.Name === 'bridge' ? 'docker0' : `br-${network.Id.slice(0, 12)}`)
  );
}

/** The engine's bridge networks and running containers, as the fixture needs them. */
export async function readDocker29View(socket: string): Promise<Docker29View> {
  const [apiNetworks, apiContainers] = await Promise.all([
    dockerGet<ApiNetwork[]>(socket, '/networks'),
    dockerGet<ApiContainer[]>(socket, '/containers/json'),
  ]);
  const bridgeById = new Map<string, string>();
  const networks: Docker29Network[] = [];
  for (const network of apiNetworks) {
    const bridge = bridgeOf(network);
    if (bridge === undefined) continue;
    bridgeById.set(network.Id, bridge);
    const subnets = (network.IPAM?.Config ?? []).map((c) => c.Subnet ?? '').filter((s) => s !== '');
    networks.push({
      bridge,
      subnets: { 4: subnets.filter((s) => !s.includes(':')), 6: subnets.filter((s) => s.includes(':')) },
    });
  }
  networks.sort((a, b) => a.bridge.localeCompare(b.bridge));
  const containers = apiContainers.map((c): Docker29Container => {
    const mode = c.HostConfig?.NetworkMode ?? 'bridge';
    const primaryName = mode === 'default' ? 'bridge' : mode;
    const attached = Object.entries(c.NetworkSettings?.Networks ?? {})
      .sort(([a], [b]) => (a === primaryName ? -1 : b === primaryName ? 1 : a.localeCompare(b)))
      .map(([, n]) => ({
        bridge: bridgeById.get(n.NetworkID ?? ''),
        ipv4: n.IPAddress || undefined,
        ipv6: n.GlobalIPv6Address || undefined,
      }))
      .filter((e): e is Docker29Endpoint => e.bridge !== undefined);
    const ports = (c.Ports ?? [])
      .filter((p) => p.PublicPort !== undefined)
      .map((p) => ({
        hostIp: p.IP ?? '',
        hostPort: p.PublicPort ?? 0,
        containerPort: p.PrivatePort,
        protocol: p.Type as Docker29Publication['protocol'],
      }));
    return { endpoints: attached, ports };
  });
  return { networks, containers };
}

/**
 * Keeps a test host's `docker-bridges` tables in step with its engine, like
 * Docker 29 would. `start()` loads them once and follows events until `stop()`.
 */
export class Docker29Firewall {
  private events: http.ClientRequest | undefined;
  private running: Promise<void> = Promise.resolve();
  private pending = false;
  private stopped = false;
  private failure: Error | undefined;
  /** Loads done so far. */
  loads = 0;

  constructor(private readonly host: TestHost) {}

  async start(): Promise<void> {
    const sysctl = await this.host.exec('sysctl', ['-q', '-w', 'net.ipv4.conf.all.route_localnet=1']);
    if (sysctl.exitCode !== 0) throw new Error(`sysctl route_localnet: ${sysctl.stderr}`);
    this.follow();
    await this.sync();
  }

  /** Loads the tables for the engine's state now. */
  async sync(): Promise<void> {
    await this.load(await readDocker29View(this.host.socket));
  }

  private async load(view: Docker29View): Promise<void> {
    const payload = renderDocker29Table(view, 'ip') + renderDocker29Table(view, 'ip6');
    const result = await this.host.exec('nft', ['-f', '-'], { input: payload });
    if (result.exitCode !== 0)
      throw new Error(`docker29 fixture: nft rejected the tables: ${result.stderr}\n${payload}`);
    this.loads++;
  }

  /** Resolves once every change seen so far is loaded; rejects if a load failed. */
  async settled(): Promise<void> {
    while (this.pending) await this.running;
    await this.running;
    if (this.failure) throw this.failure;
  }

  stop(): void {
    this.stopped = true;
    this.events?.destroy();
  }

  private request(): void {
    if (this.pending) return;
    this.pending = true;
    this.running = this.running.then(async () => {
      this.pending = false;
      // An engine that does not answer (restarting) is read again when its events come back.
      const view = await readDocker29View(this.host.socket).catch(() => undefined);
      if (view === undefined) return;
      try {
        await this.load(view);
      } catch (error) {
        this.failure = error instanceof Error ? error : new Error(String(error));
      }
    });
  }

  /** Streams container and network events; each one asks for a load (coalesced). */
  private follow(): void {
    if (this.stopped) return;
    const filters = encodeURIComponent(JSON.stringify({ type: ['container', 'network'] }));
    const request = http.get(
      { socketPath: this.host.socket, path: `/events?filters=${filters}` },
      (response) => {
        response.on('data', () => this.request());
        response.on('end', () => this.reconnect());
        response.on('error', () => this.reconnect());
      },
    );
    request.on('error', () => this.reconnect());
    this.events = request;
  }

  private reconnect(): void {
    if (this.stopped) return;
    // The engine restarted: load once it answers again, and follow its new stream.
    setTimeout(() => {
      this.follow();
      this.request();
    }, 200);
  }
}
