import { describe, expect, it } from 'vitest';
import { Conntrack, parseConntrackList } from './conntrack.js';
import { fakeConntrack } from './fake-conntrack.js';
import { loadConfig } from '../config/config.js';
import { parseIPv4 } from '../net/ip.js';
import { memoryLogger } from '../observe/memory-logger.js';
import { desiredState, type DesiredState } from '../policy/desired.js';
import type { Flow, HostInterface } from '../policy/judge-flow.js';
import type { FamilyReport } from './firewall.js';
import { RevokingFirewall, type CutResult } from './revocation.js';
import { webContainer } from '../../test/support/states.js';

const WEB = webContainer('203.0.113.11');
const INTERFACES: HostInterface[] = [
  { name: 'eth0', family: 4, address: '203.0.113.1', prefix: 24 },
  { name: 'docker0', family: 4, address: '172.17.0.1', prefix: 16 },
];

function state(allow: string): DesiredState {
  return desiredState(
    { containers: [{ ...WEB, labels: { 'dockfw.allow': allow } }], bridges: ['docker0'] },
    loadConfig({}),
  );
}

function flow(source: string, sourcePort = 40000): Flow {
  return {
    family: 4,
    protocol: 'tcp',
    source: parseIPv4(source) ?? -1n,
    sourcePort,
    destination: parseIPv4('203.0.113.1') ?? -1n,
    destinationPort: 8080,
    replySource: parseIPv4('172.17.0.2') ?? -1n,
    replySourcePort: 80,
  };
}

/** One sync as sync.ts runs it: the write, its reports logged, then what follows. */
async function synced(firewall: RevokingFirewall, desired: DesiredState): Promise<void> {
  await firewall.reconcile(desired);
  await firewall.afterReported();
}

function setUp(flows: Flow[]) {
  const table = fakeConntrack(flows);
  const results: CutResult[] = [];
  const { logger, records } = memoryLogger();
  const firewall = new RevokingFirewall({
    firewall: { reconcile: () => Promise.resolve([]) },
    connections: new Conntrack(table.run),
    interfaces: () => INTERFACES,
    logger,
    onCut: (r) => results.push(r),
  });
  return { table, results, records, firewall };
}

describe('cutting revoked connections', () => {
  it('at the first sync deletes exactly the connections the rules refuse, both families listed', async () => {
    const { table, results, records, firewall } = setUp([flow('203.0.113.10'), flow('203.0.113.11')]);
    await synced(firewall, state('203.0.113.11'));
    expect(table.flows.map((f) => f.source)).toEqual([parseIPv4('203.0.113.11')]);
    expect(results).toEqual([{ listed: 2, cut: 1, failed: 0 }]);
    expect(table.calls.filter((c) => c[1] === '-L').map((c) => c[3])).toEqual(['ipv4', 'ipv6']);
    expect(records.find((r) => r.msg === 'revoked connection cut')).toMatchObject({
      container: 'web',
      target: 'binding 0.0.0.0:8080/tcp',
    });
  });

  it('lists again only after a sync that narrowed something', async () => {
    const { table, results, firewall } = setUp([flow('203.0.113.10')]);
    await synced(firewall, state('203.0.113.0/24'));
    await synced(firewall, state('203.0.113.0/24'));
    await synced(firewall, state('203.0.0.0/16'));
    expect(results).toHaveLength(1);
    await synced(firewall, state('203.0.113.11'));
    expect(results).toHaveLength(2);
    expect(table.flows).toEqual([]);
  });

  it('cuts only once the sync’s reports are out, not inside the write', async () => {
    const { table, results, firewall } = setUp([flow('203.0.113.10')]);
    await firewall.reconcile(state('203.0.113.11'));
    expect(results).toEqual([]);
    expect(table.flows).toHaveLength(1);
    await firewall.afterReported();
    expect(results).toEqual([{ listed: 1, cut: 1, failed: 0 }]);
  });

  for (const [what, report] of [
    [
      'rules rewritten though nothing asked for changed',
      { written: true, desiredChanged: false, structural: [] },
    ],
    [
      'a chain or set gone, with a container’s change in the same write',
      { written: true, desiredChanged: true, structural: ['set dockfw-guarded4 missing'] },
    ],
    [
      'the backend says the write put back more than a container’s change',
      { written: true, desiredChanged: true, structural: [], repaired: true },
    ],
  ] as const) {
    it(`cuts again after a sync that repaired drift (${what}): connections may have come in while the rules were gone`, async () => {
      const { table, results } = setUp([]);
      let repaired = false;
      const revoking = new RevokingFirewall({
        firewall: {
          reconcile: () =>
            Promise.resolve(
              repaired
                ? [
                    {
                      family: 4,
                      placement: { kind: 'nftables', table: 'inet dockfw' },
                      drift: {
                        missing: ['x'],
                        unexpected: [],
                        reordered: false,
                        structural: report.structural,
                      },
                      written: report.written,
                      desiredChanged: report.desiredChanged,
                      ...('repaired' in report ? { repaired: report.repaired } : {}),
                    } satisfies FamilyReport,
                  ]
                : [],
            ),
        },
        connections: new Conntrack(table.run),
        interfaces: () => INTERFACES,
        logger: memoryLogger().logger,
        onCut: (r) => results.push(r),
      });
      await synced(revoking, state('203.0.113.11'));
      expect(results).toHaveLength(1);
      // While dockfw's rules were flushed, a disallowed source got in.
      table.flows.push(flow('203.0.113.10'));
      await synced(revoking, state('203.0.113.11'));
      expect(results).toHaveLength(1);
      repaired = true;
      await synced(revoking, state('203.0.113.11'));
      expect(results).toHaveLength(2);
      expect(table.flows).toEqual([]);
    });
  }

  it('does not cut after a write that only carried a container’s change', async () => {
    const { table, results } = setUp([]);
    const revoking = new RevokingFirewall({
      firewall: {
        reconcile: () =>
          Promise.resolve([
            {
              family: 4,
              placement: { kind: 'nftables', table: 'inet dockfw' },
              drift: { missing: ['x'], unexpected: [], reordered: false, structural: [] },
              written: true,
              desiredChanged: true,
            } satisfies FamilyReport,
          ]),
      },
      connections: new Conntrack(table.run),
      interfaces: () => INTERFACES,
      logger: memoryLogger().logger,
      onCut: (r) => results.push(r),
    });
    await synced(revoking, state('203.0.113.11'));
    await synced(revoking, state('203.0.113.0/24'));
    expect(results).toHaveLength(1);
  });

  it('logs a failing cut with the container and target, and tries again next sync', async () => {
    const { table, results, records, firewall } = setUp([flow('203.0.113.10')]);
    const run = table.run;
    let failDeletes = true;
    const flaky = new RevokingFirewall({
      firewall: { reconcile: () => Promise.resolve([]) },
      connections: new Conntrack((file, args, input) =>
        failDeletes && args[0] === '-D' ? Promise.reject(new Error('netlink busy')) : run(file, args, input),
      ),
      interfaces: () => INTERFACES,
      logger: memoryLogger().logger,
      onCut: (r) => results.push(r),
    });
    void firewall;
    void records;
    await synced(flaky, state('203.0.113.11'));
    expect(results.at(-1)).toEqual({ listed: 1, cut: 0, failed: 1 });
    failDeletes = false;
    await synced(flaky, state('203.0.113.11'));
    expect(results.at(-1)).toEqual({ listed: 1, cut: 1, failed: 0 });
    expect(table.flows).toEqual([]);
  });

  it('counts a connection gone between listing and deleting as done', async () => {
    const gone = flow('203.0.113.10');
    const { table, results, firewall } = setUp([gone]);
    const list = table.run;
    const racing = new RevokingFirewall({
      firewall: { reconcile: () => Promise.resolve([]) },
      connections: new Conntrack(async (file, args, input) => {
        const result = await list(file, args, input);
        if (args[0] === '-L') table.flows.splice(0);
        return result;
      }),
      interfaces: () => INTERFACES,
      logger: memoryLogger().logger,
      onCut: (r) => results.push(r),
    });
    void firewall;
    await synced(racing, state('203.0.113.11'));
    expect(results).toEqual([{ listed: 1, cut: 0, failed: 0 }]);
  });
});

describe('conntrack -L output', () => {
  it('reads tcp, udp and sctp flows of the family, original then reply, and skips the rest', () => {
    const out = [
      'ipv4     2 tcp      6 431999 ESTABLISHED src=203.0.113.10 dst=203.0.113.1 sport=40000 dport=8080 src=172.17.0.2 dst=203.0.113.10 sport=80 dport=40000 [ASSURED] mark=0 use=1',
      'ipv4     2 udp      17 29 src=203.0.113.10 dst=203.0.113.1 sport=5353 dport=53 [UNREPLIED] src=172.17.0.2 dst=203.0.113.10 sport=53 dport=5353 mark=0 use=1',
      'ipv4     2 icmp     1 29 src=203.0.113.10 dst=203.0.113.1 type=8 code=0 id=1 src=203.0.113.1 dst=203.0.113.10 type=0 code=0 id=1 mark=0 use=1',
      'ipv4     2 tcp      6 10 ESTABLISHED src=203.0.113.10 dst=203.0.113.1 sport=1 dport=2 src=203.0.113.1 dst=203.0.113.10 sport=2 dport=1 mark=0 zone=3 use=1',
      'ipv6     10 tcp      6 431999 ESTABLISHED src=::1 dst=::1 sport=1 dport=2 src=::1 dst=::1 sport=2 dport=1 mark=0 use=1',
      // Closed: nothing flows any more, and a new SYN on the entry is a new connection.
      'ipv4     2 tcp      6 117 TIME_WAIT src=203.0.113.10 dst=203.0.113.1 sport=40001 dport=8080 src=172.17.0.2 dst=203.0.113.10 sport=80 dport=40001 [ASSURED] mark=0 use=1',
      'ipv4     2 tcp      6 9 CLOSE src=203.0.113.10 dst=203.0.113.1 sport=40002 dport=8080 src=172.17.0.2 dst=203.0.113.10 sport=80 dport=40002 mark=0 use=1',
      // Not yet answered: it may still become established, so it is listed.
      'ipv4     2 tcp      6 119 SYN_SENT src=203.0.113.10 dst=203.0.113.1 sport=40003 dport=8080 [UNREPLIED] src=172.17.0.2 dst=203.0.113.10 sport=80 dport=40003 mark=0 use=1',
    ].join('\n');
    const flows = parseConntrackList(out, 4);
    expect(flows.map((f) => [f.protocol, f.destinationPort, f.replySourcePort, f.sourcePort])).toEqual([
      ['tcp', 8080, 80, 40000],
      ['udp', 53, 53, 5353],
      ['tcp', 8080, 80, 40003],
    ]);
    expect(parseConntrackList(out, 6)).toHaveLength(1);
  });

  it('is what the fake prints, and the fake refuses malformed deletes', async () => {
    const table = fakeConntrack([flow('203.0.113.10')]);
    const conntrack = new Conntrack(table.run);
    expect(await conntrack.list(4)).toEqual([flow('203.0.113.10')]);
    await expect(
      table.run('conntrack', ['-D', '-f', 'ipv4', '-p', 'tcp', '--orig-src', '::1']),
    ).rejects.toThrow(/bad delete options/);
    const args = [
      '-D',
      '-f',
      'ipv6',
      '-p',
      'tcp',
      '--orig-src',
      '203.0.113.10',
      '--orig-dst',
      '203.0.113.1',
      '--orig-port-src',
      '1',
      '--orig-port-dst',
      '2',
    ];
    await expect(table.run('conntrack', args)).rejects.toThrow(/Bad IP address/);
    expect(await conntrack.delete(flow('203.0.113.10'))).toBe(true);
    expect(await conntrack.delete(flow('203.0.113.10'))).toBe(false);
  });
});
