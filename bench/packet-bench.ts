/**
 * Figure 6: what dockfw's rules cost a packet. A Docker-like path made by hand:
 * client namespace → router namespace (DNAT of a published port, FORWARD →
 * DOCKER-USER as Docker 28 makes it) → a "container" namespace behind a
 * bridge. One TCP flow (iperf3, 3 s) from outside to the published port, with
 * dockfw's rules for 1,000 other containers plus the target present, divided
 * by the same flow without them just before; the figure is the median of the
 * rounds' ratios (pairs taken back to back, in alternating order: on a small
 * shared machine a flow's speed drifts between rounds by more than the rules cost).
 * The payloads are the ones dockfw's own renderers produce for those containers.
 * The target container sorts last, so with iptables a packet walks every
 * other container's rules first (the worst place; nftables does set lookups).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { tableSpec } from '../src/backends/nftables/elements.js';
import { renderTablePayload } from '../src/backends/nftables/render.js';
import { renderSyncPayload } from '../src/backends/iptables/render.js';
import { familySets, renderSetsFull } from '../src/backends/iptables/sets.js';
import { loadConfig } from '../src/config/config.js';
import { parseInspect } from '../src/docker/inspect.js';
import { desiredState } from '../src/policy/desired.js';
import { addDockerChains, createNetns, deleteNetns, inNs, median, track, type Variant } from './lib.js';
import type { Report } from './report.js';
import { benchContainer, containerId, inspectJson } from './standin-engine.js';

const CLIENT = '203.0.113.10';
/** Not allowed by the target's label: the control flow. */
const OTHER = '203.0.113.11';
const ROUTER = '203.0.113.1';
const TARGET = '172.17.0.2';
const PORT = 5201;

interface Topology {
  readonly client: string;
  readonly router: string;
  readonly container: string;
}

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

async function buildTopology(): Promise<Topology> {
  const client = await createNetns('pc');
  const router = await createNetns('pr');
  const container = await createNetns('pk');
  await ip(['-n', router, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client]);
  await ip(['-n', router, 'addr', 'add', `${ROUTER}/24`, 'dev', 'ext0']);
  await ip(['-n', client, 'addr', 'add', `${CLIENT}/24`, 'dev', 'eth0']);
  await ip(['-n', client, 'addr', 'add', `${OTHER}/24`, 'dev', 'eth0']);
  await ip(['-n', router, 'link', 'add', 'docker0', 'type', 'bridge']);
  await ip(['-n', router, 'addr', 'add', '172.17.0.1/16', 'dev', 'docker0']);
  await ip([
    '-n',
    router,
    'link',
    'add',
    'veth-k',
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    container,
  ]);
  await ip(['-n', router, 'link', 'set', 'veth-k', 'master', 'docker0']);
  await ip(['-n', container, 'addr', 'add', `${TARGET}/16`, 'dev', 'eth0']);
  for (const [ns, dev] of [
    [router, 'ext0'],
    [router, 'docker0'],
    [router, 'veth-k'],
    [client, 'eth0'],
    [container, 'eth0'],
  ] as const)
    await ip(['-n', ns, 'link', 'set', dev, 'up']);
  await ip(['-n', container, 'route', 'add', 'default', 'via', '172.17.0.1']);
  await inNs(router, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  // Docker's DNAT of the published port (iptables-nft, as Docker 28 writes it).
  await inNs(router, 'iptables-nft', [
    '-t',
    'nat',
    '-A',
    'PREROUTING',
    '-d',
    ROUTER,
    '-p',
    'tcp',
    '--dport',
    String(PORT),
    '-j',
    'DNAT',
    '--to-destination',
    `${TARGET}:${PORT}`,
  ]);
  return { client, router, container };
}

/** The desired state for 1,000 other containers plus the target (allowed from CLIENT, sorts last). */
function desired(others: number) {
  const containers = Array.from({ length: others }, (_, i) =>
    parseInspect(inspectJson(benchContainer(i + 1))),
  );
  const target = inspectJson(benchContainer(0));
  target.Name = '/zz-target';
  target.Id = containerId(1_000_000);
  target.Config.Labels = { 'dockfw.allow': CLIENT };
  target.NetworkSettings.Ports = {
    [`${PORT}/tcp`]: [{ HostIp: '0.0.0.0', HostPort: String(PORT) }],
  } as never;
  target.NetworkSettings.Networks.bridge.IPAddress = TARGET;
  containers.push(parseInspect(target));
  return desiredState({ containers, bridges: ['docker0'] }, loadConfig({}));
}

/** One TCP flow for `seconds`; bits per second received. */
async function flow(topology: Topology, seconds: number): Promise<number> {
  const result = await inNs(topology.client, 'iperf3', [
    '-c',
    ROUTER,
    '-p',
    String(PORT),
    '-B',
    CLIENT,
    '-t',
    String(seconds),
    '-J',
  ]);
  const json = JSON.parse(result.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return json.end.sum_received.bits_per_second;
}

const PACKET_MISSED = `Why: the rules are as dockfw writes them where conntrack works: an established
connection returns before the lookups, so only a flow's first packets pay for the sets. What
is left is the cost of the chains being in the path at all (the hook, a conntrack state
match, for iptables the jump from DOCKER-USER) and noise between rounds on a small shared
machine: compare the figure at 5x the containers, which shows whether it grows with them.`;

type Flavour = { label: string; backend: 'iptables' | 'nftables'; variant: Variant; others: number };

async function install(topology: Topology, flavour: Flavour, payload: string): Promise<void> {
  if (flavour.backend === 'nftables') await inNs(topology.router, 'nft', ['-f', '-'], payload);
  else await inNs(topology.router, `iptables-${flavour.variant}-restore`, ['--noflush', '-w'], payload);
}

async function remove(topology: Topology, flavour: Flavour): Promise<void> {
  if (flavour.backend === 'nftables')
    await inNs(topology.router, 'nft', ['-f', '-'], 'add table inet dockfw\ndelete table inet dockfw\n');
  // The jump out of DOCKER-USER gone, the DOCKFW chains are never reached.
  else await inNs(topology.router, `iptables-${flavour.variant}`, ['-w', '-F', 'DOCKER-USER']);
}

export async function packetBench(
  report: Report,
  options: { others: number; rounds: number; seconds: number },
): Promise<void> {
  report.section(
    `Packet path: one TCP flow to a published port, dockfw rules for ${options.others} other containers present`,
  );
  const { others } = options;
  // Does a packet's cost grow with the sets' elements? Each backend with 5x the containers too.
  const flavours: Flavour[] = [others, others * 5].flatMap((n) => [
    { label: 'iptables-nft', backend: 'iptables' as const, variant: 'nft' as const, others: n },
    { label: 'iptables-legacy', backend: 'iptables' as const, variant: 'legacy' as const, others: n },
    { label: 'nftables', backend: 'nftables' as const, variant: 'nft' as const, others: n },
  ]);
  let allRefused = true;
  for (const flavour of flavours) {
    const topology = await buildTopology();
    const server = track(
      spawn(
        'nsenter',
        [`--net=/var/run/netns/${topology.container}`, '--', 'iperf3', '-s', '-p', String(PORT)],
        { stdio: 'ignore' },
      ),
    );
    try {
      await addDockerChains(topology.router, flavour.variant);
      const state = desired(flavour.others);
      // The iptables rules look the verdicts up in dockfw's ipsets: fill them once (they stay).
      if (flavour.backend === 'iptables')
        await inNs(
          topology.router,
          'ipset',
          ['restore'],
          renderSetsFull(4, familySets(state, 4), new Set(), new Set()),
        );
      const payload =
        flavour.backend === 'nftables'
          ? // As dockfw writes it where conntrack works: established packets take the fast path.
            renderTablePayload({ ...tableSpec(state), fastPath: true })
          : renderSyncPayload(state, 4, { parent: 'DOCKER-USER', positions: [] }, { fastPath: true });
      await sleep(300);
      const without: number[] = [];
      const withRules: number[] = [];
      // Installed afresh each time (an iptables payload inserts its jump again).
      const rules = async (): Promise<void> => {
        await remove(topology, flavour);
        await install(topology, flavour, payload);
      };
      const withFlow = async (): Promise<void> => {
        await rules();
        withRules.push(await flow(topology, options.seconds));
      };
      const withoutFlow = async (): Promise<void> => {
        await remove(topology, flavour);
        without.push(await flow(topology, options.seconds));
      };
      // Each pair in alternating order (without first, then with first): a flow's
      // speed that drifts over the run weighs on both sides alike.
      for (let round = 0; round < options.rounds; round++) {
        if (round % 2 === 0) {
          await withoutFlow();
          await withFlow();
        } else {
          await withFlow();
          await withoutFlow();
        }
      }
      // The control flow below needs the rules in place.
      await rules();
      // The rules really were in the path: a client they do not allow is refused.
      const refused = await inNs(topology.client, 'iperf3', [
        '-c',
        ROUTER,
        '-p',
        String(PORT),
        '-B',
        OTHER,
        '-t',
        '1',
        '--connect-timeout',
        '1000',
      ])
        .then(() => false)
        .catch(() => true);
      const ratio = median(withRules.map((bps, i) => bps / (without[i] ?? NaN)));
      const gbit = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;
      const wanted = flavour.others === others ? 0.95 : 0.9;
      report.figure({
        name: `${flavour.label}, ${flavour.others} others: with / without dockfw's rules (median of ${options.rounds} rounds' ratios, ${options.seconds} s each way)`,
        value: `${ratio.toFixed(3)} (${gbit(median(withRules))} / ${gbit(median(without))})`,
        target: `at least ${wanted}`,
        met: ratio >= wanted,
        ifMissed: PACKET_MISSED,
      });
      allRefused &&= refused;
      if (!refused)
        report.note(
          `${flavour.label}: the unallowed control flow was NOT refused: the rules were not in the path`,
        );
    } finally {
      server.kill('SIGKILL');
      for (const ns of [topology.client, topology.router, topology.container]) await deleteNetns(ns);
    }
  }
  if (allRefused)
    report.note(
      `Each backend's run ends with a flow from ${OTHER}, which the rules do not allow; it was refused, so the rules were in the path.`,
    );
}
