/**
 * Revoked live connections are cut (nftables backend, Docker 28.5.2, with the
 * fast path on: established packets skip the lookups). Long-lived TCP
 * connections from outside clients send a line every 50 ms to an echo server
 * and count the echoes. A connection whose source dockfw does not admit is cut
 * (no echo after the cut) while an allowed source's keeps working, on the IPv4
 * DNAT path and the IPv6 docker-proxy path (the default bridge is IPv4-only):
 * (1) connections made while dockfw was not running, cut by its first sync;
 * (2) connections the policy admitted, cut after a restart with a narrower one
 * (the fast path in the kernel all along); (3) the same with a server that keeps
 * sending on its own: once its entry is gone, its next packet makes a new entry
 * in its own direction, so the cut client's packets are replies to it, and those
 * are judged too (the stream stops); (4) while dockfw runs, after the sync
 * that narrowed a port (a created container's claim on it intersects); (5) at
 * the repair of dockfw's rules someone else took away (the nftables table
 * deleted; the iptables backend's jumps deleted), for the connections made
 * while they were gone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ADDRESSES, HOST_ADDRESSES, startTestHost, TEST_IMAGE, type TestHost } from '../host/index.js';
import { LiveConnection } from '../host/live-connection.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';

const HOST_V4 = HOST_ADDRESSES.v4[0];
const HOST_V6 = HOST_ADDRESSES.v6[0];
const [DISALLOWED, ALLOWED] = CLIENT_ADDRESSES.v4;
const [DISALLOWED_V6, ALLOWED_V6] = CLIENT_ADDRESSES.v6;
const ENV = { DOCKFW_BACKEND: 'nftables', DOCKFW_LOG_LEVEL: 'debug' };
/** Time for the cut to reach every connection; not a figure, only an upper bound. */
const CUT_WITHIN_MS = 20_000;
/** How long a cut connection must stay silent (and a kept one keep echoing). */
const WATCH_MS = 1500;

async function echoServer(
  host: TestHost,
  name: string,
  port: number,
  allow: string | undefined,
  serve: readonly string[] = [`TCP-LISTEN:${port},fork,reuseaddr`, 'PIPE'],
): Promise<void> {
  const label = allow === undefined ? [] : ['-l', `dockfw.allow=${allow}`];
  const published = ['-p', `${port}:${port}`, ...label];
  await host.docker(['run', '-d', '--name', name, ...published, TEST_IMAGE, 'socat', ...serve]);
}

async function startDockfw(host: TestHost, env: Record<string, string> = {}): Promise<DockfwProcess> {
  const dockfw = DockfwProcess.start(host, { ...ENV, ...env });
  await dockfw.waitForLog('rules applied', 30_000);
  return dockfw;
}

/** From one source per family (IPv4 by DNAT, IPv6 through docker-proxy) to a host port. */
function bothPaths(h: TestHost, sources: readonly [string, string], port: number): LiveConnection[] {
  return [
    new LiveConnection(h.clientNs, sources[0], HOST_V4, port),
    new LiveConnection(h.clientNs, sources[1], HOST_V6, port),
  ];
}

/** Every connection echoes now. */
async function allEcho(connections: readonly LiveConnection[]): Promise<void> {
  await Promise.all(connections.map((c) => c.waitEchoing()));
}

/**
 * After the cut: the cut ones fall silent and stay so, the kept ones keep reading.
 * Each family's connections are listed and cut in turn after the sync that put the
 * rules back; on a loaded machine the last may come seconds after the first, so each
 * is watched until silent (a connection the cut missed keeps echoing and fails).
 */
async function expectCut(
  dockfw: DockfwProcess,
  cut: readonly LiveConnection[],
  kept: readonly LiveConnection[],
  cutsBefore = 0,
): Promise<void> {
  await dockfw.waitForLog('revoked connection cut', 30_000, cutsBefore + 1);
  const deadline = Date.now() + CUT_WITHIN_MS;
  for (const c of cut) {
    let echoes = await c.echoesDuring(WATCH_MS);
    while (echoes > 0 && Date.now() < deadline) echoes = await c.echoesDuring(WATCH_MS);
    const logged = dockfw.logged('revoked connection cut').map((r) => String(r.connection));
    expect(echoes, `${c.name} still echoes (cut: ${logged.join(', ')})`).toBe(0);
  }
  const counts = await Promise.all(kept.map((c) => c.echoesDuring(WATCH_MS)));
  kept.forEach((c, i) => expect(counts[i], `${c.name} was cut`).toBeGreaterThan(5));
}

describe('revoked live connections are cut: Docker 28.5.2 (iptables-nft), nftables backend', () => {
  let host: TestHost | undefined;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft', ipv6: true });
  }, 120_000);

  afterEach(async () => {
    LiveConnection.stopAll();
    await DockfwProcess.stopAll();
    if (host === undefined) return;
    await dockfwCommand(host, ['uninstall'], ENV);
    await host.docker(['rm', '-f', 'echo-labeled', 'echo-open', 'stream-open', 'claim'], {
      reject: false,
    });
  });

  afterAll(async () => {
    LiveConnection.stopAll();
    await host?.stop();
  }, 60_000);

  it('cuts at the first sync the connections made while dockfw was not running, and only those', async () => {
    const h = host as TestHost;
    await echoServer(h, 'echo-labeled', 7100, `${ALLOWED}, ${ALLOWED_V6}`);
    const revoked = bothPaths(h, [DISALLOWED, DISALLOWED_V6], 7100);
    const kept = bothPaths(h, [ALLOWED, ALLOWED_V6], 7100);
    // Without dockfw every source is answered: the situation really is there.
    await allEcho([...revoked, ...kept]);
    const dockfw = await startDockfw(h);
    // The fast path is on (conntrack works here), so only the cut can stop them.
    expect(
      (await h.nft(['list', 'chain', 'inet', 'dockfw', 'published'])).includes('ct state established'),
    ).toBe(true);
    await expectCut(dockfw, revoked, kept);
    const cuts = dockfw.logged('revoked connection cut');
    expect(cuts.map((r) => r.container)).toContain('echo-labeled');
    // A new connection from the revoked source is refused too.
    const again = new LiveConnection(h.clientNs, DISALLOWED, HOST_V4, 7100);
    await expect(again.waitEchoing(2000)).rejects.toThrow(/no echo/);
  }, 120_000);

  it('cuts, after a restart with a narrower policy, connections the old one admitted (fast path on throughout)', async () => {
    const h = host as TestHost;
    await echoServer(h, 'echo-labeled', 7100, `${ALLOWED}, ${ALLOWED_V6}`);
    await echoServer(h, 'echo-open', 7200, undefined);
    const first = await startDockfw(h, { DOCKFW_DEFAULT_POLICY: 'allow' });
    const revoked = bothPaths(h, [DISALLOWED, DISALLOWED_V6], 7200);
    const kept = bothPaths(h, [ALLOWED, ALLOWED_V6], 7100);
    await allEcho([...revoked, ...kept]);
    await first.stop();
    // dockfw down, its rules (and fast path) in place: everything still echoes.
    await allEcho([...revoked, ...kept]);
    const second = await startDockfw(h, { DOCKFW_DEFAULT_POLICY: 'deny' });
    await expectCut(second, revoked, kept);
    expect(second.logged('revoked connection cut').map((r) => r.container)).toContain('echo-open');
  }, 120_000);

  it('stops a stream a server keeps sending to a revoked client (its replies are judged)', async () => {
    const h = host as TestHost;
    await echoServer(h, 'echo-labeled', 7100, `${ALLOWED}, ${ALLOWED_V6}`);
    // Same host and container port: masquerade gives the server's new entry the old tuple.
    await echoServer(h, 'stream-open', 7300, undefined, [
      'TCP-LISTEN:7300,fork,reuseaddr',
      'SYSTEM:while true; do echo x; sleep 0.05; done',
    ]);
    const first = await startDockfw(h, { DOCKFW_DEFAULT_POLICY: 'allow' });
    const revoked = bothPaths(h, [DISALLOWED, DISALLOWED_V6], 7300);
    const kept = [new LiveConnection(h.clientNs, ALLOWED, HOST_V4, 7100)];
    await allEcho([...revoked, ...kept]);
    await first.stop();
    const second = await startDockfw(h, { DOCKFW_DEFAULT_POLICY: 'deny' });
    await expectCut(second, revoked, kept);
    expect(second.logged('revoked connection cut').map((r) => r.container)).toContain('stream-open');
  }, 120_000);

  // Someone else's change opens every path for a while; whatever connected meanwhile is cut at the repair.
  for (const [backend, damage] of [
    ['nftables', 'deleted dockfw’s table'],
    ['iptables', 'deleted dockfw’s jumps (filter and mangle, both families)'],
  ] as const) {
    it(`cuts, at the repair, connections made while someone else ${damage} (${backend} backend)`, async () => {
      const h = host as TestHost;
      const env = { DOCKFW_BACKEND: backend, DOCKFW_RULESET_WATCH: 'off', DOCKFW_RESYNC: '*/6 * * * * *' };
      await echoServer(h, 'echo-labeled', 7100, `${ALLOWED}, ${ALLOWED_V6}`);
      // No watch: the periodic check (every 6 s) repairs, which leaves time to connect meanwhile.
      const dockfw = await startDockfw(h, env);
      try {
        const periodicPasses = () =>
          dockfw.records.filter(
            (r) => r.msg === 'firewall in sync' && Array.isArray(r.reasons) && r.reasons.includes('periodic'),
          ).length;
        // Damage right after a check, so the next one (6 s on) finds all of it: a check landing
        // between the four commands would repair part of it, and cut before the rest is back.
        const passes = periodicPasses();
        await expect.poll(periodicPasses, { timeout: 20_000, interval: 20 }).toBeGreaterThan(passes);
        const cutsBefore = dockfw.logged('revoked connection cut').length;
        if (backend === 'nftables') await h.nft(['delete', 'table', 'inet', 'dockfw']);
        else
          for (const family of [4, 6] as const) {
            await h.iptables(family, ['-D', 'DOCKER-USER', '-j', 'DOCKFW']);
            await h.iptables(family, ['-t', 'mangle', '-D', 'PREROUTING', '-j', 'DOCKFW-PRE']);
          }
        const revoked = bothPaths(h, [DISALLOWED, DISALLOWED_V6], 7100);
        const kept = bothPaths(h, [ALLOWED, ALLOWED_V6], 7100);
        // dockfw's rules out of the way, the disallowed sources got in: the situation really is there.
        await allEcho([...revoked, ...kept]);
        expect(dockfw.logged('drift found: re-applied the rules')).toHaveLength(0);
        await expectCut(dockfw, revoked, kept, cutsBefore);
        expect(dockfw.logged('drift found: re-applied the rules')[0]?.reasons).toEqual(['periodic']);
        const cuts = dockfw.logged('revoked connection cut').slice(cutsBefore);
        console.log(`${backend}: cut at the repair: ${cuts.map((r) => String(r.connection)).join(', ')}`);
        expect(cuts.map((r) => r.container)).toContain('echo-labeled');
      } finally {
        await DockfwProcess.stopAll();
        await dockfwCommand(h, ['uninstall'], env);
      }
    }, 120_000);
  }

  it('cuts while running, after the sync that narrowed a port (a created container claims it too)', async () => {
    const h = host as TestHost;
    await echoServer(h, 'echo-open', 7200, undefined);
    const dockfw = await startDockfw(h, { DOCKFW_DEFAULT_POLICY: 'allow' });
    const revoked = bothPaths(h, [DISALLOWED, DISALLOWED_V6], 7200);
    const kept = bothPaths(h, [ALLOWED, ALLOWED_V6], 7200);
    await allEcho([...revoked, ...kept]);
    const applied = dockfw.logged('rules applied').length;
    // Claims that meet on a host port intersect: 7200 is now the allowed sources' only.
    const label = `dockfw.allow=${ALLOWED}, ${ALLOWED_V6}`;
    await h.docker(['create', '--name', 'claim', '-p', '7200:7200', '-l', label, TEST_IMAGE]);
    await dockfw.waitForLog('rules applied', 20_000, applied + 1);
    await expectCut(dockfw, revoked, kept);
    // Cut at that sync (the first one, under policy allow, refused nothing), named by the binding's owner.
    expect(dockfw.logged('revoked connection cut').map((r) => [r.container, r.target])).toEqual([
      ['echo-open', 'binding 0.0.0.0:7200/tcp'],
      ['echo-open', 'binding [::]:7200/tcp'],
    ]);
  }, 120_000);
});
