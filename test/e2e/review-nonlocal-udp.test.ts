// Review: the published-binding layer lets every packet whose destination is
// not a LOCAL address through unjudged (`-m addrtype ! --dst-type LOCAL -j
// RETURN`, `fib daddr type != local return`). A UDP socket bound to every
// address, as docker-proxy's is, also takes datagrams sent to the host's
// IPv6 anycast addresses (the subnet-router anycast the kernel adds for each
// prefix once forwarding is on), to broadcast and to multicast addresses. So
// a source the labels do not list reaches a restricted UDP port through
// docker-proxy, and over anycast it even gets the answer.
//
// No engine: the real docker-proxy of the provisioned Docker 28.5.2 runs in a
// throwaway namespace "host", forwarding to a UDP echo server in a "container"
// namespace behind a bridge named docker0, with dockfw's rendered prerouting
// layer loaded (iptables-nft and nftables). Needs root.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderPreroutingPayload } from '../../src/backends/iptables/render.js';
import { familySets, renderSetsFull } from '../../src/backends/iptables/sets.js';
import { tableSpec } from '../../src/backends/nftables/elements.js';
import { renderTablePayload } from '../../src/backends/nftables/render.js';
import { loadConfig } from '../../src/config/config.js';
import { desiredState } from '../../src/policy/desired.js';
import { readProvisioned } from '../host/provisioned.js';

const PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const id = randomBytes(3).toString('hex');
const HOST = `rvw${id}-h`;
const CLIENT = `rvw${id}-c`;
const CONTAINER = `rvw${id}-k`;
const PORT = 5353;
const ALLOWED = { v4: '203.0.113.10', v6: '2001:db8::10' };
const DENIED = { v4: '203.0.113.66', v6: '2001:db8::66' };

const processes: { kill: () => void; done: Promise<unknown> }[] = [];

async function sh(ns: string | undefined, file: string, args: string[], input?: string) {
  const command = ns === undefined ? [file, ...args] : ['ip', 'netns', 'exec', ns, file, ...args];
  return execa(command[0] ?? file, command.slice(1), {
    env: { PATH },
    ...(input === undefined ? {} : { input }),
  });
}

function background(ns: string, file: string, args: string[]) {
  const child = execa('nsenter', [`--net=/var/run/netns/${ns}`, '--', file, ...args], {
    env: { PATH },
    reject: false,
    // docker-proxy reports readiness on fd 3.
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    buffer: true,
  });
  processes.push({ kill: () => child.kill('SIGKILL'), done: child });
  return child;
}

/** UDP echo in the "container": logs every payload it gets, answers `pong <payload>`. */
const ECHO = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => { console.log('got ' + m.toString()); s.send('pong ' + m.toString(), r.port, r.address); });
s.bind(53, '0.0.0.0');`;

/** One datagram from a chosen source; prints the answer or `none` after 1.5 s. */
const PROBE = `
const [src, dst, port, token, dev] = process.argv.slice(1);
const six = src.includes(':');
const s = require('node:dgram').createSocket(six ? 'udp6' : 'udp4');
s.bind(0, src, () => {
  if (!six) s.setBroadcast(true);
  s.on('message', (m) => { console.log('answer ' + m.toString()); process.exit(0); });
  s.send(token, Number(port), dev ? dst + '%' + dev : dst);
  setTimeout(() => { console.log('none'); process.exit(0); }, 1500);
});`;

let counter = 0;

async function probe(src: string, dst: string, dev?: string) {
  const token = `t${++counter}-${src}-${dst}`;
  const result = await sh(CLIENT, 'node', [
    '-e',
    PROBE,
    src,
    dst,
    String(PORT),
    token,
    ...(dev ? [dev] : []),
  ]);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const delivered = seen.has(token);
  return { answered: result.stdout.startsWith('answer'), delivered };
}

const seen = new Set<string>();

const desired = desiredState(
  {
    bridges: ['docker0'],
    containers: [
      {
        id: 'a'.repeat(64),
        name: 'dns',
        running: true,
        labels: { 'dockfw.allow': `${ALLOWED.v4}, ${ALLOWED.v6}` },
        // IPv4-only network: IPv6 clients reach it through docker-proxy only.
        networks: [{ network: 'bridge', ipv4: '172.17.0.2' }],
        ports: [
          { containerPort: 53, protocol: 'udp', hostIp: '0.0.0.0', hostPort: PORT },
          { containerPort: 53, protocol: 'udp', hostIp: '::', hostPort: PORT },
        ],
      },
    ],
  },
  loadConfig({}),
);

beforeAll(async () => {
  const proxy = path.join(readProvisioned().engines['28.5'], 'usr/sbin/docker-proxy');
  for (const ns of [HOST, CLIENT, CONTAINER]) {
    await sh(undefined, 'ip', ['netns', 'add', ns]);
    await sh(undefined, 'ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await sh(undefined, 'ip', [
    'link',
    'add',
    'rvwext',
    'netns',
    HOST,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    CLIENT,
  ]);
  await sh(undefined, 'ip', ['-n', HOST, 'addr', 'add', '203.0.113.1/24', 'dev', 'rvwext']);
  await sh(undefined, 'ip', ['-n', HOST, 'addr', 'add', '2001:db8::1/64', 'dev', 'rvwext', 'nodad']);
  for (const a of [ALLOWED.v4, DENIED.v4])
    await sh(undefined, 'ip', ['-n', CLIENT, 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
  for (const a of [ALLOWED.v6, DENIED.v6])
    await sh(undefined, 'ip', ['-n', CLIENT, 'addr', 'add', `${a}/64`, 'dev', 'eth0', 'nodad']);
  await sh(undefined, 'ip', ['-n', HOST, 'link', 'set', 'rvwext', 'up']);
  await sh(undefined, 'ip', ['-n', CLIENT, 'link', 'set', 'eth0', 'up']);
  await sh(undefined, 'ip', ['-n', HOST, 'link', 'add', 'docker0', 'type', 'bridge']);
  await sh(undefined, 'ip', ['-n', HOST, 'addr', 'add', '172.17.0.1/16', 'dev', 'docker0']);
  await sh(undefined, 'ip', ['-n', HOST, 'link', 'set', 'docker0', 'up']);
  await sh(undefined, 'ip', [
    'link',
    'add',
    'rvwveth',
    'netns',
    HOST,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    CONTAINER,
  ]);
  await sh(undefined, 'ip', ['-n', HOST, 'link', 'set', 'rvwveth', 'master', 'docker0', 'up']);
  await sh(undefined, 'ip', ['-n', CONTAINER, 'addr', 'add', '172.17.0.2/16', 'dev', 'eth0']);
  await sh(undefined, 'ip', ['-n', CONTAINER, 'link', 'set', 'eth0', 'up']);
  await sh(undefined, 'ip', ['-n', CONTAINER, 'route', 'add', 'default', 'via', '172.17.0.1']);
  // As on a Docker host with IPv6: forwarding on (the kernel then adds the subnet-router anycast 2001:db8::).
  await sh(HOST, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);

  const echo = background(CONTAINER, process.execPath, ['-e', ECHO]);
  echo.stdout?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.startsWith('got ')) seen.add(line.slice(4));
  });
  for (const hostIp of ['0.0.0.0', '::'])
    void background(HOST, proxy, [
      '-proto',
      'udp',
      '-host-ip',
      hostIp,
      '-host-port',
      String(PORT),
      '-container-ip',
      '172.17.0.2',
      '-container-port',
      '53',
    ]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const listening = await sh(HOST, 'ss', ['-lun']);
  expect(listening.stdout).toContain(`0.0.0.0:${PORT}`);
  expect(listening.stdout).toContain(`[::]:${PORT}`);
});

afterAll(async () => {
  for (const child of processes) child.kill();
  await Promise.allSettled(processes.map((p) => p.done));
  for (const ns of [HOST, CLIENT, CONTAINER]) await execa('ip', ['netns', 'delete', ns], { reject: false });
});

const BACKENDS = [
  {
    name: 'iptables-nft',
    async load() {
      await sh(HOST, 'nft', ['delete', 'table', 'inet', 'dockfw']).catch(() => undefined);
      // The layer's rules look the bindings up in dockfw's sets: those come first.
      for (const family of [4, 6] as const)
        await sh(
          HOST,
          'ipset',
          ['restore'],
          renderSetsFull(family, familySets(desired, family), new Set(), new Set()),
        );
      await sh(
        HOST,
        'iptables-nft-restore',
        ['--noflush'],
        renderPreroutingPayload(desired, 4, { parent: 'PREROUTING', positions: [] }),
      );
      await sh(
        HOST,
        'ip6tables-nft-restore',
        ['--noflush'],
        renderPreroutingPayload(desired, 6, { parent: 'PREROUTING', positions: [] }),
      );
    },
  },
  {
    name: 'nftables',
    async load() {
      for (const tool of ['iptables-nft', 'ip6tables-nft'])
        await sh(HOST, tool, ['-t', 'mangle', '-F', 'DOCKFW-PRE']).catch(() => undefined);
      await sh(HOST, 'nft', ['-f', '-'], renderTablePayload(tableSpec(desired)));
    },
  },
] as const;

describe.each(BACKENDS)('review: UDP to non-local destinations of a restricted port ($name)', (backend) => {
  beforeAll(async () => {
    await backend.load();
  });

  it('baseline: the allowed source is answered on the host address, the other is not', async () => {
    expect(await probe(ALLOWED.v4, '203.0.113.1')).toEqual({ answered: true, delivered: true });
    expect(await probe(DENIED.v4, '203.0.113.1')).toEqual({ answered: false, delivered: false });
    expect(await probe(ALLOWED.v6, '2001:db8::1')).toEqual({ answered: true, delivered: true });
    expect(await probe(DENIED.v6, '2001:db8::1')).toEqual({ answered: false, delivered: false });
  });

  it('a denied source gets no answer through the subnet-router anycast address 2001:db8::', async () => {
    expect(await probe(DENIED.v6, '2001:db8::')).toEqual({ answered: false, delivered: false });
  });

  it('a denied source cannot deliver a datagram to the container by IPv4 broadcast', async () => {
    expect(await probe(DENIED.v4, '203.0.113.255')).toEqual({ answered: false, delivered: false });
    expect(await probe(DENIED.v4, '255.255.255.255')).toEqual({ answered: false, delivered: false });
  });

  it('a denied source cannot deliver a datagram to the container by multicast (224.0.0.1, ff02::1)', async () => {
    expect(await probe(DENIED.v4, '224.0.0.1')).toEqual({ answered: false, delivered: false });
    expect(await probe(DENIED.v6, 'ff02::1', 'eth0')).toEqual({ answered: false, delivered: false });
  });
});
