// Drop records against a real kernel, both backends, in throwaway network
// namespaces (needs root; no engine): a disallowed source probing a published
// port is dropped and recorded against the right container and port; a scan
// from 10,000 sources fills the record set to its size and no further, every
// packet is still dropped, and reading the records at the cap keeps the
// reader's memory flat; a sync never takes the records for drift.
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandRunner } from '../../src/backends/command.js';
import { runCommand } from '../../src/backends/iptables/command.js';
import { readIpsetRecords } from '../../src/backends/iptables/records.js';
import { IptablesReconciler } from '../../src/backends/iptables/reconcile.js';
import { uninstall } from '../../src/backends/iptables/uninstall.js';
import { readNftRecords } from '../../src/backends/nftables/records.js';
import { NftablesReconciler } from '../../src/backends/nftables/reconcile.js';
import { uninstallNftables } from '../../src/backends/nftables/uninstall.js';
import { dropsReport } from '../../src/cli/drops.js';
import { loadConfig } from '../../src/config/config.js';
import type { ContainerSnapshot } from '../../src/docker/snapshot.js';
import { DropAttributor } from '../../src/drops/attribute.js';
import type { DropRecord } from '../../src/drops/record.js';
import { DaemonMetrics } from '../../src/observe/metrics.js';
import { memoryLogger } from '../../src/observe/memory-logger.js';
import { DaemonState } from '../../src/observe/state.js';
import { desiredState } from '../../src/policy/desired.js';

const CAP = 4096;
const SCAN = 10_000;
const tag = randomBytes(3).toString('hex');
const HOST = `dfdr-h-${tag}`;
const CLIENT = `dfdr-c-${tag}`;

function runIn(ns: string): CommandRunner {
  return (file, args, input) =>
    runCommand('nsenter', [`--net=/var/run/netns/${ns}`, '--', file, ...args], input);
}
const host = runIn(HOST);
const client = runIn(CLIENT);

const WEB: ContainerSnapshot = {
  id: 'ab'.repeat(32),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '203.0.113.10' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: 'fd00::2' }],
  ports: [
    { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 },
    { containerPort: 53, protocol: 'udp', hostIp: '', hostPort: 8053 },
  ],
};
const DB: ContainerSnapshot = {
  ...WEB,
  id: 'cd'.repeat(32),
  name: 'db',
  labels: { 'dockfw.allow': 'none' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.3', ipv6: 'fd00::3' }],
  ports: [{ containerPort: 5432, protocol: 'udp', hostIp: '', hostPort: 5432 }],
};
const desired = desiredState({ containers: [WEB, DB], bridges: ['docker0'] }, loadConfig({}));

/** One UDP datagram per call from a client address to the host. */
async function probe(source: string, port: number, count = 1): Promise<void> {
  const family = source.includes(':') ? 'udp6' : 'udp4';
  const target = source.includes(':') ? '2001:db8::1' : '203.0.113.1';
  const script = `const s=require('dgram').createSocket('${family}');s.bind({address:'${source}'},()=>{let n=0;const go=()=>{if(n++>=${count})return s.close();s.send('x',${port},'${target}',go)};go()})`;
  await client(process.execPath, ['-e', script]);
}

/**
 * A scan from SCAN IPv6 sources: the client rewrites each datagram's source
 * address from a counter (2001:db8:1::1 up), so one socket sends them all.
 */
async function scan(port: number): Promise<void> {
  // The host's link-layer address first: datagrams waiting for it would be lost.
  await probe('2001:db8::10', 9999);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const map = Array.from({ length: SCAN }, (_, i) => `${i} : 2001:db8:1::${(i + 1).toString(16)}`).join(', ');
  await client(
    'nft',
    ['-f', '-'],
    `add table ip6 scan\ndelete table ip6 scan\ntable ip6 scan {\n\tchain out {\n\t\ttype filter hook output priority -300; policy accept;\n\t\tudp dport ${port} ip6 saddr set numgen inc mod ${SCAN} map { ${map} }\n\t}\n}\n`,
  );
  const script = `const s=require('dgram').createSocket('udp6');let n=0;const go=()=>{for(let i=0;i<500&&n<${SCAN};i++,n++)s.send('x',${port},'2001:db8::1');if(n<${SCAN})setImmediate(go);else setTimeout(()=>s.close(),300)};go()`;
  await client(process.execPath, ['-e', script]);
  await client('nft', ['delete', 'table', 'ip6', 'scan']);
}

/** Packets that got past dockfw's drop: counted by a chain that runs after it. */
async function watchAfterDrop(): Promise<() => Promise<number>> {
  await host(
    'nft',
    ['-f', '-'],
    'add table inet seen\ndelete table inet seen\ntable inet seen {\n\tchain pre {\n\t\ttype filter hook prerouting priority -140; policy accept;\n\t\tudp dport { 8053, 5432 } counter\n\t}\n}\n',
  );
  return async () => {
    const { stdout } = await host('nft', ['list', 'chain', 'inet', 'seen', 'pre']);
    return Number(/counter packets (\d+)/.exec(stdout)?.[1] ?? NaN);
  };
}

beforeAll(async () => {
  for (const ns of [HOST, CLIENT]) {
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await execa('ip', [
    '-n',
    HOST,
    'link',
    'add',
    'ext0',
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    CLIENT,
  ]);
  await execa('ip', ['-n', HOST, 'addr', 'add', '203.0.113.1/24', 'dev', 'ext0']);
  await execa('ip', ['-n', HOST, 'addr', 'add', '2001:db8::1/64', 'dev', 'ext0', 'nodad']);
  for (const a of ['203.0.113.10', '203.0.113.11', '203.0.113.12'])
    await execa('ip', ['-n', CLIENT, 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
  await execa('ip', ['-n', CLIENT, 'addr', 'add', '2001:db8::10/64', 'dev', 'eth0', 'nodad']);
  for (const ns of [HOST, CLIENT])
    await execa('ip', ['-n', ns, 'link', 'set', ns === HOST ? 'ext0' : 'eth0', 'up']);
}, 30_000);

afterAll(async () => {
  for (const ns of [HOST, CLIENT]) await execa('ip', ['netns', 'del', ns], { reject: false });
});

function mine(records: readonly DropRecord[], family: 4 | 6): DropRecord[] {
  return records.filter((r) => r.family === family);
}

/** RSS growth while reading the records `times` times (after five reads to warm up), in MB. */
async function readGrowthMb(read: () => Promise<unknown>, times: number): Promise<number> {
  for (let i = 0; i < 5; i++) await read();
  global.gc?.();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < times; i++) await read();
  global.gc?.();
  return (process.memoryUsage().rss - before) / 1e6;
}

describe('nftables: drop records', () => {
  const reconciler = new NftablesReconciler({ run: host, dropRecords: CAP });
  afterAll(async () => {
    await uninstallNftables(host);
    await host('nft', ['delete', 'table', 'inet', 'seen']).catch(() => undefined);
  });

  it('records a disallowed source against the container and port it probed', async () => {
    const reports = await reconciler.reconcile(desired);
    expect(reports.map((r) => r.written)).toEqual([true, true]);
    const passed = await watchAfterDrop();
    await probe('203.0.113.11', 8053, 3);
    await probe('203.0.113.12', 5432, 2);
    await probe('203.0.113.10', 8053, 1); // allowed: no record
    const { records, capacity } = await readNftRecords(host);
    expect(capacity.get(4)).toBe(CAP);
    const report = dropsReport({ records, sources: [] }, new DropAttributor(desired), undefined, 0);
    expect(
      report.drops.map((d) => [d.container, d.on, d.destination, d.port, d.protocol, d.source, d.packets]),
    ).toEqual([
      ['web', 'host', '203.0.113.1', 8053, 'udp', '203.0.113.11', 3],
      ['db', 'host', '203.0.113.1', 5432, 'udp', '203.0.113.12', 2],
    ]);
    expect(report.drops[0]?.ageSeconds).toBeLessThan(5);
    // Only the allowed datagram went on.
    expect(await passed()).toBe(1);
    // The records changed the kernel, not dockfw's state: nothing to write.
    expect((await reconciler.reconcile(desired)).map((r) => r.written)).toEqual([false, false]);
  });

  it('serves the records as per-container drop counters in /metrics', async () => {
    const state = new DaemonState({ version: 'test', defaultPolicy: 'allow' });
    state.syncApplied(desired, await reconciler.reconcile(desired));
    const metrics = new DaemonMetrics({
      state,
      version: 'test',
      logger: memoryLogger().logger,
      readCounters: () => Promise.reject(new Error('not iptables')),
      readRecords: () => readNftRecords(host),
    });
    const first = await metrics.render();
    expect(first).toContain('dockfw_dropped_packets_total{container="web"} 3');
    expect(first).toContain('dockfw_dropped_packets_total{container="db"} 2');
    await probe('203.0.113.11', 8053, 2);
    const second = await metrics.render();
    expect(second).toContain('dockfw_dropped_packets_total{container="web"} 5');
    expect(second).toContain('dockfw_drop_records_capacity{family="ipv4"} 4096');
  });

  it('a 10,000-source scan fills the set to its size, every packet still dropped', async () => {
    const passed = await watchAfterDrop();
    await scan(8053);
    const { records } = await readNftRecords(host);
    const six = mine(records, 6);
    expect(six).toHaveLength(CAP);
    expect(await passed()).toBe(0);
    const { stdout } = await host('nft', ['list', 'chain', 'inet', 'dockfw', 'published']);
    expect(Number(/@bound6 counter packets (\d+)/.exec(stdout)?.[1])).toBe(SCAN);
    const growth = await readGrowthMb(() => readNftRecords(host), 20);
    console.log(
      `nftables: ${six.length} IPv6 records after ${SCAN} sources; RSS growth over 20 more reads ${growth.toFixed(1)} MB`,
    );
    expect(growth).toBeLessThan(64);
    expect((await reconciler.reconcile(desired)).map((r) => r.written)).toEqual([false, false]);
  }, 60_000);
});

describe('iptables: drop records', () => {
  const reconciler = new IptablesReconciler({
    run: host,
    legacyTableNames: () => Promise.resolve(''),
    dropRecords: CAP,
  });

  beforeAll(async () => {
    // Docker's chains as an engine leaves them.
    for (const tool of ['iptables-nft', 'ip6tables-nft']) {
      await host(tool, ['-w', '-N', 'DOCKER-USER']);
      await host(tool, ['-w', '-N', 'DOCKER-FORWARD']);
      await host(tool, ['-w', '-A', 'FORWARD', '-j', 'DOCKER-USER']);
      await host(tool, ['-w', '-A', 'FORWARD', '-j', 'DOCKER-FORWARD']);
    }
  });

  it('records a disallowed source against the container and port it probed', async () => {
    const reports = await reconciler.reconcile(desired);
    expect(reports.map((r) => r.written)).toEqual([true, true]);
    const passed = await watchAfterDrop();
    await probe('203.0.113.11', 8053, 3);
    await probe('203.0.113.10', 8053, 1);
    const { records, capacity } = await readIpsetRecords(host);
    expect(capacity.get(4)).toBe(CAP);
    const report = dropsReport({ records, sources: [] }, new DropAttributor(desired), 'web', 0);
    expect(report.drops.map((d) => [d.container, d.on, d.port, d.source, d.packets, d.since])).toEqual([
      ['web', 'host', 8053, '203.0.113.11', 3, 'first'],
    ]);
    expect(await passed()).toBe(1);
    expect((await reconciler.reconcile(desired)).map((r) => r.written)).toEqual([false, false]);
  });

  it('a 10,000-source scan fills the ipset to maxelem, every packet still dropped', async () => {
    const passed = await watchAfterDrop();
    await scan(8053);
    const { records } = await readIpsetRecords(host);
    expect(mine(records, 6)).toHaveLength(CAP);
    expect(await passed()).toBe(0);
    const growth = await readGrowthMb(() => readIpsetRecords(host), 20);
    console.log(
      `iptables: ${mine(records, 6).length} IPv6 records after ${SCAN} sources; RSS growth over 20 more reads ${growth.toFixed(1)} MB`,
    );
    expect(growth).toBeLessThan(64);
  }, 60_000);

  it('uninstall removes the chains, then the ipsets', async () => {
    await uninstall({ run: host, legacyTableNames: () => Promise.resolve('') });
    expect((await host('ipset', ['list', '-n'])).stdout.trim()).toBe('');
    await host('nft', ['delete', 'table', 'inet', 'seen']);
  });
});
