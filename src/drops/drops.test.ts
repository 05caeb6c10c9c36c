import { describe, expect, it } from 'vitest';
import { parseIpsetSave, recordSetCreateArgs } from '../backends/iptables/records.js';
import { diffTable, needsWrite } from '../backends/nftables/drift.js';
import { tableSpec } from '../backends/nftables/elements.js';
import { tableJson } from '../backends/nftables/fake-nft.js';
import { parseTable } from '../backends/nftables/read.js';
import { parseRecordSet } from '../backends/nftables/records.js';
import { dropsJson, dropsReport, renderDrops } from '../cli/drops.js';
import { defaultConfig } from '../config/config.js';
import type { ContainerSnapshot } from '../docker/snapshot.js';
import { desiredState } from '../policy/desired.js';
import { DropAttributor } from './attribute.js';
import { dropLine } from './log.js';
import type { DropRecord } from './record.js';
import { RateLimiter, RecordTracker } from './tracker.js';

const WEB: ContainerSnapshot = {
  id: 'a'.repeat(64),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '198.51.100.10' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
  ports: [
    { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 },
    { containerPort: 53, protocol: 'udp', hostIp: '203.0.113.1', hostPort: 8053 },
  ],
};
const desired = desiredState({ containers: [WEB], bridges: ['docker0'] }, defaultConfig());

// As nft 1.0.6 printed it after three sources probed a published UDP port.
const NFT_LISTING = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', json_schema_version: 1 } },
    {
      set: {
        family: 'inet',
        name: 'drops4',
        table: 'dockfw',
        type: ['ipv4_addr', 'inet_proto', 'inet_service', 'ipv4_addr'],
        handle: 2,
        size: 4,
        flags: ['timeout'],
        timeout: 3600,
        elem: [
          {
            elem: {
              val: { concat: ['203.0.113.1', 'udp', 8053, '203.0.113.10'] },
              expires: 3599,
              counter: { packets: 7, bytes: 210 },
            },
          },
          {
            elem: {
              val: { concat: ['172.17.0.2', 'tcp', 80, '203.0.113.11'] },
              expires: 3000,
              counter: { packets: 1, bytes: 60 },
            },
          },
          { elem: { val: { concat: ['203.0.113.1', 'icmp', 0, '203.0.113.12'] }, expires: 1 } },
        ],
        stmt: [{ counter: null }],
      },
    },
  ],
});

const IPSET_SAVE = `create dockfw-drops4 hash:ip,port,ip family inet hashsize 1024 maxelem 65536 timeout 3600 counters bucketsize 12 initval 0x513128be
add dockfw-drops4 203.0.113.1,udp:8053,203.0.113.10 timeout 3590 packets 4 bytes 120
add dockfw-drops4 203.0.113.1,tcp:8080,198.51.100.77 timeout 3598 packets 1 bytes 60
add dockfw-drops4 203.0.113.1,icmp:8/0,198.51.100.77 timeout 3598 packets 1 bytes 60
`;

describe('reading drop records', () => {
  it('reads nft -j list set into records, skipping what is not one', () => {
    const { records, capacity } = parseRecordSet(NFT_LISTING, 4);
    expect(capacity).toBe(4);
    expect(records).toEqual([
      {
        family: 4,
        destination: '203.0.113.1',
        protocol: 'udp',
        port: 8053,
        source: '203.0.113.10',
        packets: 7,
        bytes: 210,
        expiresSeconds: 3599,
        timeoutSeconds: 3600,
        since: 'last',
      },
      expect.objectContaining({ destination: '172.17.0.2', port: 80, source: '203.0.113.11', packets: 1 }),
    ]);
  });

  it('reads ipset save into records, their age measured from the first drop', () => {
    const { records, capacity } = parseIpsetSave(IPSET_SAVE, 4);
    expect(capacity).toBe(65536);
    expect(records).toHaveLength(2);
    expect(records[0]).toEqual({
      family: 4,
      destination: '203.0.113.1',
      protocol: 'udp',
      port: 8053,
      source: '203.0.113.10',
      packets: 4,
      bytes: 120,
      expiresSeconds: 3590,
      timeoutSeconds: 3600,
      since: 'first',
    });
    const six = parseIpsetSave(
      'add dockfw-drops6 2001:db8::1,tcp:443,2001:db8:0:0::10 timeout 5 packets 2 bytes 160\n',
      6,
    );
    expect(six.records[0]).toMatchObject({ destination: '2001:db8::1', source: '2001:db8::10', port: 443 });
  });

  it('creates the ipset with counters, a timeout and a bound, as an argument array', () => {
    expect(recordSetCreateArgs(6, 1024)).toEqual([
      'create',
      '-exist',
      'dockfw-drops6',
      'hash:ip,port,ip',
      'family',
      'inet6',
      'counters',
      'timeout',
      '3600',
      'maxelem',
      '1024',
    ]);
    expect(() => recordSetCreateArgs(4, 0)).toThrow();
  });
});

describe('the record sets and drift', () => {
  it('never counts record elements as drift, but checks the declaration', () => {
    const spec = tableSpec(desired, 4);
    const listed = JSON.parse(tableJson(spec)) as { nftables: { set?: { name: string; elem?: unknown } }[] };
    const drops = listed.nftables.find((i) => i.set?.name === 'drops4')?.set;
    if (drops === undefined) throw new Error('no drops4 in the listing');
    drops.elem = (JSON.parse(NFT_LISTING) as { nftables: { set?: { elem: unknown } }[] }).nftables[1]?.set
      ?.elem;
    const seen = parseTable(JSON.stringify(listed));
    expect(needsWrite(diffTable(spec, seen))).toBe(false);
    // Another size is another declaration: the table is written again.
    expect(diffTable(tableSpec(desired, 8), seen).structural).toEqual(['set drops4', 'set drops6']);
    // Records off: the sets and chains are not ours to keep.
    expect(diffTable(tableSpec(desired, 0), seen).structural).toContain('set drops4 (not ours)');
  });
});

describe('attributing records to containers', () => {
  const attributor = new DropAttributor(desired);
  const base: DropRecord = {
    family: 4,
    destination: '203.0.113.1',
    protocol: 'udp',
    port: 8053,
    source: '203.0.113.10',
    packets: 3,
    bytes: 90,
    expiresSeconds: 3590,
    timeoutSeconds: 3600,
    since: 'last',
  };

  it('finds the binding by host address and port, the container by its address and port', () => {
    expect(attributor.attribute(base)).toMatchObject({ container: 'web', on: 'host', ageSeconds: 10 });
    expect(
      attributor.owner({ ...base, destination: '192.0.2.1', port: 8080, protocol: 'tcp' }),
    ).toMatchObject({ name: 'web', on: 'host' });
    expect(attributor.owner({ ...base, destination: '172.17.0.2', port: 80, protocol: 'tcp' })).toMatchObject(
      {
        name: 'web',
        on: 'container',
      },
    );
    expect(attributor.owner({ ...base, port: 9999 })).toBeUndefined();
    expect(attributor.owner({ ...base, destination: '192.0.2.1' })).toBeUndefined();
  });

  it('prints the top sources and the fill of each set, or JSON', () => {
    const records = [base, { ...base, source: '203.0.113.11', packets: 9 }];
    const read = {
      records,
      sources: [
        {
          backend: 'nftables' as const,
          capacity: new Map([[4, 4] as const]),
          count: new Map([[4, 2] as const]),
        },
      ],
    };
    const report = dropsReport(read, attributor, 'web', 1);
    expect(renderDrops(report)).toBe(
      [
        'drop records (nftables): IPv4 2/4',
        '',
        'CONTAINER  PORT                       SOURCE        PACKETS  SEEN',
        'web        host 203.0.113.1:8053/udp  203.0.113.11        9  10s ago',
        '(1 more; --top 0 shows all)',
        '',
      ].join('\n'),
    );
    expect(dropsReport(read, attributor, 'other', 0).drops).toEqual([]);
    const json = dropsJson(report, new Date('2026-01-01T00:00:10Z')) as { drops: Record<string, unknown>[] };
    expect(json.drops[0]).toMatchObject({
      container: 'web',
      port: 8053,
      lastSeen: '2026-01-01T00:00:00.000Z',
    });
  });
});

describe('new drops from successive reads', () => {
  const record = (packets: number, source = '203.0.113.10'): DropRecord => ({
    family: 4,
    destination: '203.0.113.1',
    protocol: 'tcp',
    port: 8080,
    source,
    packets,
    bytes: packets * 60,
    expiresSeconds: 3600,
    timeoutSeconds: 3600,
    since: 'last',
  });

  it('counts what each record added, a restarted record from zero, nothing at the first read', () => {
    const tracker = new RecordTracker();
    expect(tracker.update([record(5)])).toEqual([]);
    expect(tracker.update([record(7), record(1, '203.0.113.11')]).map((d) => d.packets)).toEqual([2, 1]);
    expect(tracker.update([record(7)])).toEqual([]);
    expect(tracker.update([record(3)]).map((d) => d.packets)).toEqual([3]);
    expect(new RecordTracker().update([record(5)], true).map((d) => d.packets)).toEqual([5]);
  });

  it('lets one line per key through per interval, and forgets old keys past its bound', () => {
    const limiter = new RateLimiter(60_000, 2);
    expect(limiter.allow('a', 0)).toBe(true);
    expect(limiter.allow('a', 59_999)).toBe(false);
    expect(limiter.allow('a', 60_000)).toBe(true);
    expect(limiter.allow('b', 60_001)).toBe(true);
    expect(limiter.allow('c', 60_002)).toBe(true);
    expect(limiter.allow('a', 60_003)).toBe(true);
  });

  it('logs a line the README fail2ban filter matches', () => {
    const line = dropLine({
      source: '198.51.100.7',
      container: 'web',
      port: 8080,
      protocol: 'tcp',
      destination: '203.0.113.1',
      packets: 3,
    });
    expect(line).toBe('drop src=198.51.100.7 container=web port=8080/tcp dst=203.0.113.1 packets=3');
    // failregex = ^.*"msg":"drop src=<HOST> container=\S+ port=\d+/\w+ .*$ with <HOST> as an address.
    const failregex = /^.*"msg":"drop src=(?<host>[0-9a-f.:]+) container=\S+ port=\d+\/\w+ /;
    expect(failregex.exec(JSON.stringify({ level: 30, msg: line }))?.groups?.host).toBe('198.51.100.7');
  });
});
