/**
 * Every path a packet can take to a published port, at every moment: the
 * userland proxy (IPv6 clients of an IPv4-only container, IPv4 clients once
 * Docker's DNAT is gone), engine restarts that hand containers each other's
 * addresses, live-restore restarts, and an outside interface whose name looks
 * like a Docker bridge. Each test first shows the path OPEN without dockfw
 * (and that the situation it meant to create really happened), then starts
 * dockfw and shows the path closed to the sources the labels do not list.
 *
 * Parameterised by engine, iptables variant and backend; one small file per
 * variant. Three test hosts, one after the other: the plain one (proxy paths,
 * swaps), one with --live-restore, one whose outside interface is br-wan.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_ADDRESSES,
  EXTERNAL_INTERFACE,
  HOST_ADDRESSES,
  startTestHost,
  TEST_IMAGE,
  type Protocol,
  type TestHost,
  type TestHostOptions,
} from '../host/index.js';
import { readPidFile } from '../host/processes.js';
import { TcpProber, totals, type ProberFigures } from '../host/prober.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';
import { iptablesFirewall, type SuiteFirewall } from './suite-firewall.js';

export interface PathsSuiteOptions extends TestHostOptions {
  readonly ipv6UserChain: boolean;
  /** Docker's rules are in nf_tables (iptables-nft): `nft flush ruleset` takes its DNAT away. */
  readonly dockerInNftables: boolean;
  readonly firewall?: SuiteFirewall;
}

const HOST_A = HOST_ADDRESSES.v4[0];
const HOST_V6 = HOST_ADDRESSES.v6[0];
const ALLOWED = '203.0.113.11';
const DISALLOWED = '203.0.113.10';
const ALLOWED_V6 = '2001:db8:1::11';
const DISALLOWED_V6 = '2001:db8:1::10';
const ALL_V6 = [...CLIENT_ADDRESSES.v6];
const FAST_RESYNC = '*/2 * * * * *';
const LISTEN = '127.0.0.1:9811';
const DRIFT = 'drift found: re-applied the rules';
const CONNECTED = 'connected to docker';
// Every restart swaps addresses here (asserted: in CI every one of 5 did); three keep the whole CI run under 30 minutes.
const RESTARTS = 3;
/** The disallowed prober opens a new connection to each target this often. */
const PROBE_INTERVAL_MS = 15;
const WAN = 'br-wan';

interface Member {
  readonly name: string;
  readonly port: number;
  /** dockfw.allow, or unlabeled (default policy allow: open to everyone). */
  readonly allow?: string;
}

/** Five containers on the default bridge, each on its own host port; three restricted. */
const FLEET: readonly Member[] = [
  { name: 'swap-one', port: 9201, allow: ALLOWED },
  { name: 'swap-two', port: 9202 },
  { name: 'swap-three', port: 9203, allow: ALLOWED },
  { name: 'swap-four', port: 9204 },
  { name: 'swap-five', port: 9205, allow: ALLOWED },
];
const RESTRICTED = FLEET.filter((m) => m.allow !== undefined);

interface ContainerState {
  readonly address: string;
  readonly startedAt: string;
  readonly pid: number;
}

/** "X took Y's address": each container whose address now is one another container had before. */
export function takeovers(
  before: Readonly<Record<string, ContainerState>>,
  after: Readonly<Record<string, ContainerState>>,
): string[] {
  const owner = new Map(Object.entries(before).map(([name, s]) => [s.address, name]));
  return Object.entries(after).flatMap(([name, s]) => {
    const previous = owner.get(s.address);
    return previous !== undefined && previous !== name ? [`${name} took ${previous}'s ${s.address}`] : [];
  });
}

/** `docker run -d` of the test image: stops fast, optionally restarts with the engine. */
async function runContainer(
  host: TestHost,
  name: string,
  options: { ports: string[]; allow?: string; restart?: boolean },
): Promise<void> {
  await host.docker([
    'run',
    '-d',
    '--name',
    name,
    '--stop-timeout',
    '1',
    ...(options.restart === true ? ['--restart', 'always'] : []),
    ...options.ports.flatMap((p) => ['-p', p]),
    ...(options.allow === undefined ? [] : ['-l', `dockfw.allow=${options.allow}`]),
    TEST_IMAGE,
  ]);
}

async function inspectAll(host: TestHost, names: readonly string[]): Promise<Record<string, ContainerState>> {
  const { stdout } = await host.docker([
    'inspect',
    '--format',
    '{{.Name}} {{.State.Pid}} {{.State.StartedAt}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
    ...names,
  ]);
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [name = '', pid = '', startedAt = '', address = ''] = line.trim().split(/\s+/);
        return [name.replace(/^\//, ''), { address, startedAt, pid: Number(pid) }];
      }),
  );
}

async function waitReachable(
  host: TestHost,
  target: { from: string; to: string; port: number; proto?: Protocol },
  timeoutMs = 30_000,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if ((await host.probe({ ...target, timeoutMs: 300 })) === 'reached') return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`${target.from} never reached ${target.to}:${target.port} within ${timeoutMs} ms`);
}

async function readyz(host: TestHost): Promise<string> {
  const result = await host.exec('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-m',
    '2',
    `http://${LISTEN}/readyz`,
  ]);
  return result.stdout.trim();
}

async function waitReady(host: TestHost, dockfw: DockfwProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await readyz(host)) !== '200') {
    if (Date.now() > deadline)
      throw new Error(`dockfw not ready within ${timeoutMs} ms:\n${dockfw.output()}`);
    await sleep(50);
  }
}

/** Docker's DNAT for `port` (iptables nat table of the host's variant, or any nft dnat rule). */
async function dnatFor(host: TestHost, port: number): Promise<string[]> {
  const nat = (await host.iptablesSave(4, 'nat').catch(() => '')).split('\n');
  const fromIptables = nat.filter((l) => l.includes('DNAT') && l.includes(`--dport ${port} `));
  const ruleset = (await host.exec('nft', ['list', 'ruleset'])).stdout.split('\n');
  const fromNft = ruleset.filter((l) => l.includes(`dport ${port} `) && l.includes('dnat'));
  return [...fromIptables, ...fromNft];
}

/** Lines of `ss -H -l{t,u}np` where docker-proxy listens on the IPv6 wildcard at `port`. */
function proxyListensV6(ss: string, port: number): boolean {
  return ss
    .split('\n')
    .some((l) => new RegExp(String.raw`(\[::\]|\*):${port}\s`).test(l) && l.includes('"docker-proxy"'));
}

/** Answers (from the kept answer times) that came during each round, a round lasting until the next starts. */
function answersByRound(figures: ProberFigures, starts: readonly number[]): number[] {
  const times = Object.values(figures.targets).flatMap((t) => t.answeredAt);
  return starts.map((start, i) => {
    const end = starts[i + 1] ?? Infinity;
    return times.filter((at) => at >= start && at < end).length;
  });
}

/** dockfw's log around the first answers, in ms relative to each answer: what it was doing then. */
function aroundAnswers(
  figures: ProberFigures,
  dockfw: DockfwProcess,
  starts: readonly number[],
  spanMs = 1500,
): string[] {
  const first = Object.entries(figures.targets)
    .flatMap(([target, t]) => t.answeredAt.map((at) => ({ target, at })))
    .sort((a, b) => a.at - b.at)
    .filter((a, i, all) => i === 0 || a.at - (all[i - 1]?.at ?? 0) > spanMs)
    .slice(0, 3);
  return first.flatMap(({ target, at }) => [
    `answer from ${target}, ${at - Math.max(0, ...starts.filter((s) => s <= at))} ms after its restart began`,
    ...dockfw.records
      .filter((r) => Math.abs(Number(r.time) - at) <= spanMs)
      .map(
        (r) =>
          `  ${Number(r.time) - at} ms: ${r.msg}${r.action === undefined ? '' : ` ${JSON.stringify(r.action)}`}${r.reasons === undefined ? '' : ` ${JSON.stringify(r.reasons)}`}`,
      ),
  ]);
}

function summary(fields: Record<string, unknown>): void {
  console.log(JSON.stringify(fields));
}

export function pathsSuite(title: string, options: PathsSuiteOptions): void {
  const fw = options.firewall ?? iptablesFirewall(options.ipv6UserChain);

  async function startHost(dockerdArgs: string[] = []): Promise<TestHost> {
    const host = await startTestHost({
      engine: options.engine,
      iptables: options.iptables,
      ipv6: true,
      dockerdArgs: [...fw.dockerdArgs, ...dockerdArgs],
    });
    await fw.setUp(host);
    return host;
  }

  async function stopHost(host: TestHost | undefined): Promise<void> {
    await TcpProber.stopAll();
    await DockfwProcess.stopAll();
    await fw.tearDown();
    await host?.stop();
  }

  async function startDockfw(host: TestHost): Promise<DockfwProcess> {
    const dockfw = DockfwProcess.start(host, {
      ...fw.dockfwEnv(),
      DOCKFW_RESYNC: FAST_RESYNC,
      DOCKFW_LOG_LEVEL: 'debug',
    });
    await dockfw.waitForLog(CONNECTED, 30_000);
    await waitReady(host, dockfw);
    return dockfw;
  }

  /** Back to "without dockfw": stopped, its rules uninstalled, the test's containers gone. */
  async function withoutDockfw(host: TestHost, containers: readonly string[] = []): Promise<void> {
    await TcpProber.stopAll();
    await DockfwProcess.stopAll();
    const result = await dockfwCommand(host, ['uninstall'], fw.dockfwEnv());
    if (result.exitCode !== 0) throw new Error(`uninstall failed: ${result.stderr}`);
    if (containers.length > 0) await host.docker(['rm', '-f', ...containers], { reject: false });
  }

  /**
   * Restarts the engine and waits until it settled: dockerd really is a new
   * process, dockfw (if running) reconnected and is ready, and the allowed
   * source is answered on every port of the fleet.
   */
  async function restartAndSettle(
    host: TestHost,
    fleet: readonly Member[],
    dockfw: DockfwProcess | undefined,
  ): Promise<{
    before: Record<string, ContainerState>;
    after: Record<string, ContainerState>;
    /** Container states when the engine's API first answered. */
    statesAtApi: string;
    settleMs: number;
  }> {
    const names = fleet.map((m) => m.name);
    const before = await inspectAll(host, names);
    const pidBefore = readPidFile(host.layout.dockerPidFile);
    const connected = dockfw?.logged(CONNECTED).length ?? 0;
    const started = Date.now();
    await host.restartEngine();
    const statesAtApi = (
      await host.docker([
        'ps',
        '-a',
        '--format',
        '{{.Names}}={{.State}}',
        ...names.flatMap((n) => ['-f', `name=^${n}$`]),
      ])
    ).stdout
      .split('\n')
      .sort()
      .join(' ');
    expect(readPidFile(host.layout.dockerPidFile)).not.toBe(pidBefore);
    if (dockfw !== undefined) {
      await dockfw.waitForLog(CONNECTED, 30_000, connected + 1);
      await waitReady(host, dockfw);
    }
    for (const member of fleet) await waitReachable(host, { from: ALLOWED, to: HOST_A, port: member.port });
    return { before, after: await inspectAll(host, names), statesAtApi, settleMs: Date.now() - started };
  }

  async function startFleet(host: TestHost): Promise<void> {
    for (const member of FLEET) {
      await runContainer(host, member.name, {
        ports: [`${member.port}:80`],
        restart: true,
        ...(member.allow === undefined ? {} : { allow: member.allow }),
      });
    }
    for (const member of FLEET)
      await waitReachable(host, { from: DISALLOWED, to: HOST_A, port: member.port });
  }

  const restrictedTargets = RESTRICTED.map((m) => `${HOST_A}:${m.port}`);

  function answersPerTarget(figures: ProberFigures): Record<string, number> {
    return Object.fromEntries(Object.entries(figures.targets).map(([t, f]) => [t, f.connected]));
  }

  describe(title, () => {
    describe('the docker-proxy paths and engine restarts', () => {
      let host: TestHost | undefined;
      const on = (): TestHost => {
        if (host === undefined) throw new Error('no test host');
        return host;
      };

      beforeAll(async () => {
        host = await startHost();
      });
      afterAll(() => stopHost(host));

      it('IPv6 through docker-proxy to an IPv4-only container: an IPv4-only label closes the port to all IPv6', async () => {
        const h = on();
        const names = ['proxied', 'proxied-six'];
        try {
          await runContainer(h, 'proxied', { ports: ['9101:80', '9101:53/udp'], allow: ALLOWED });
          await runContainer(h, 'proxied-six', {
            ports: ['9102:80', '9102:53/udp'],
            allow: `${ALLOWED},${ALLOWED_V6}`,
          });
          // The situation: no IPv6 in the containers, docker-proxy on [::]:PORT for TCP and UDP.
          for (const name of names) expect((await h.containerAddresses(name)).v6).toEqual([]);
          const tcp = (await h.exec('ss', ['-H', '-ltnp'])).stdout;
          const udp = (await h.exec('ss', ['-H', '-lunp'])).stdout;
          for (const port of [9101, 9102]) {
            expect(proxyListensV6(tcp, port), tcp).toBe(true);
            expect(proxyListensV6(udp, port), udp).toBe(true);
          }
          // Each path answers before the baseline is taken (UDP too: once, in CI, the first
          // UDP proxy stayed silent through four looks while the TCP ones answered).
          for (const port of [9101, 9102])
            for (const proto of ['tcp', 'udp'] as const)
              await waitReachable(h, { from: DISALLOWED_V6, to: HOST_V6, port, proto });
          const look = async () => ({
            tcp: await h.reachableFrom({ to: HOST_V6, port: 9101 }, ALL_V6),
            udp: await h.reachableFrom({ to: HOST_V6, port: 9101, proto: 'udp' }, ALL_V6),
            tcpSix: await h.reachableFrom({ to: HOST_V6, port: 9102 }, ALL_V6),
            udpSix: await h.reachableFrom({ to: HOST_V6, port: 9102, proto: 'udp' }, ALL_V6),
            v4: await h.reachableFrom({ to: HOST_A, port: 9101 }, [DISALLOWED, ALLOWED]),
          });
          const open = {
            tcp: ALL_V6,
            udp: ALL_V6,
            tcpSix: ALL_V6,
            udpSix: ALL_V6,
            v4: [DISALLOWED, ALLOWED],
          };
          // The baseline (no dockfw): a UDP datagram lost on the way is not a closed path; look again.
          let baseline = await look();
          for (let again = 0; again < 3 && JSON.stringify(baseline) !== JSON.stringify(open); again++)
            baseline = await look();
          expect(baseline).toEqual(open);

          await startDockfw(h);
          const enforced = await look();
          summary({ suite: title, case: 'ipv6 via docker-proxy', baseline, withDockfw: enforced });
          expect(enforced).toEqual({
            tcp: [],
            udp: [],
            tcpSix: [ALLOWED_V6],
            udpSix: [ALLOWED_V6],
            v4: [ALLOWED],
          });
        } finally {
          await withoutDockfw(h, names);
        }
      });

      it(`${RESTARTS} engine restarts that swap container addresses: a disallowed source probing every ${PROBE_INTERVAL_MS} ms never gets an answer`, async () => {
        const h = on();
        const names = FLEET.map((m) => m.name);
        try {
          await startFleet(h);
          // Baseline without dockfw: the prober sees the restricted ports answer, through a restart too.
          const open = await TcpProber.start(h.clientNs, {
            from: DISALLOWED,
            targets: restrictedTargets,
            intervalMs: PROBE_INTERVAL_MS,
          });
          const baselineRound = await restartAndSettle(h, FLEET, undefined);
          const baseline = await open.stop();
          expect(totals(baseline).answers).toBeGreaterThan(0);

          const dockfw = await startDockfw(h);
          for (const member of RESTRICTED) {
            expect(await h.reachableFrom({ to: HOST_A, port: member.port }, [DISALLOWED, ALLOWED])).toEqual([
              ALLOWED,
            ]);
          }
          const prober = await TcpProber.start(h.clientNs, {
            from: DISALLOWED,
            targets: restrictedTargets,
            intervalMs: PROBE_INTERVAL_MS,
          });
          const rounds: { takeovers: string[]; settleMs: number; statesAtApi: string }[] = [];
          const starts: number[] = [];
          try {
            for (let i = 0; i < RESTARTS; i++) {
              starts.push(Date.now());
              const round = await restartAndSettle(h, FLEET, dockfw);
              rounds.push({
                takeovers: takeovers(round.before, round.after),
                settleMs: round.settleMs,
                statesAtApi: round.statesAtApi,
              });
            }
          } finally {
            const figures = await prober.stop();
            const swaps = rounds.filter((r) => r.takeovers.length > 0).length;
            summary({
              suite: title,
              case: 'address swaps across engine restarts',
              baseline: {
                ...totals(baseline),
                swapped: takeovers(baselineRound.before, baselineRound.after),
              },
              probes: totals(figures).sent,
              answers: totals(figures).answers,
              http: totals(figures).http,
              answersPerTarget: answersPerTarget(figures),
              answersPerRestart: answersByRound(figures, starts),
              ...(totals(figures).answers > 0
                ? { aroundAnswers: aroundAnswers(figures, dockfw, starts) }
                : {}),
              restarts: rounds.length,
              swaps,
              takeovers: rounds.map((r) => r.takeovers),
              settleMs: rounds.map((r) => r.settleMs),
              statesAtApi: rounds.map((r) =>
                /=(?!running)/.test(r.statesAtApi) ? r.statesAtApi : 'all running',
              ),
            });
            expect(rounds).toHaveLength(RESTARTS);
            expect(
              swaps,
              'no restart swapped container addresses: the test did not create the situation it is about',
            ).toBeGreaterThan(0);
            expect(totals(figures).sent).toBeGreaterThan(RESTARTS * 100);
            expect(answersPerTarget(figures)).toEqual(
              Object.fromEntries(restrictedTargets.map((t) => [t, 0])),
            );
          }
        } finally {
          await withoutDockfw(h, names);
        }
      });

      it("IPv4 through docker-proxy once Docker's DNAT is flushed (iptables -t nat -F DOCKER)", async () => {
        const h = on();
        const port = 9111;
        try {
          await runContainer(h, 'natless', { ports: [`${port}:80`], allow: ALLOWED, restart: true });
          await waitReachable(h, { from: DISALLOWED, to: HOST_A, port });
          expect(await dnatFor(h, port)).not.toEqual([]);
          await h.iptables(4, ['-t', 'nat', '-F', 'DOCKER']);
          // The situation: no DNAT left, only docker-proxy on the host port.
          expect(await dnatFor(h, port)).toEqual([]);
          const look = () => h.reachableFrom({ to: HOST_A, port }, [DISALLOWED, ALLOWED]);
          const baseline = await look();
          expect(baseline).toEqual([DISALLOWED, ALLOWED]);

          // dockfw started in that state.
          const dockfw = await startDockfw(h);
          expect(await dnatFor(h, port)).toEqual([]);
          const startedWithoutDnat = await look();

          // Docker's DNAT back (engine restart), then flushed again while dockfw runs.
          const connected = dockfw.logged(CONNECTED).length;
          await h.restartEngine();
          await dockfw.waitForLog(CONNECTED, 30_000, connected + 1);
          await waitReady(h, dockfw);
          await waitReachable(h, { from: ALLOWED, to: HOST_A, port });
          expect(await dnatFor(h, port)).not.toEqual([]);
          const withDnat = await look();
          await h.iptables(4, ['-t', 'nat', '-F', 'DOCKER']);
          expect(await dnatFor(h, port)).toEqual([]);
          // A periodic check's worth of time, in case dockfw wants to react.
          await sleep(2500);
          await waitReady(h, dockfw);
          await waitReachable(h, { from: ALLOWED, to: HOST_A, port });
          const flushedWhileRunning = await look();
          summary({
            suite: title,
            case: 'ipv4 via docker-proxy, nat DOCKER flushed',
            baseline,
            startedWithoutDnat,
            withDnat,
            flushedWhileRunning,
          });
          expect({ startedWithoutDnat, withDnat, flushedWhileRunning }).toEqual({
            startedWithoutDnat: [ALLOWED],
            withDnat: [ALLOWED],
            flushedWhileRunning: [ALLOWED],
          });
        } finally {
          await withoutDockfw(h, ['natless']);
        }
      });

      if (options.dockerInNftables) {
        it("IPv4 through docker-proxy after `nft flush ruleset` (what a restart of Debian's nftables.service does)", async () => {
          const h = on();
          const port = 9112;
          try {
            await runContainer(h, 'ruleless', { ports: [`${port}:80`], allow: ALLOWED, restart: true });
            await waitReachable(h, { from: DISALLOWED, to: HOST_A, port });
            expect(await dnatFor(h, port)).not.toEqual([]);
            await h.nft(['flush', 'ruleset']);
            expect(await dnatFor(h, port)).toEqual([]);
            expect((await h.nft(['list', 'ruleset'])).trim()).toBe('');
            const look = () => h.reachableFrom({ to: HOST_A, port }, [DISALLOWED, ALLOWED]);
            const baseline = await look();
            expect(baseline).toEqual([DISALLOWED, ALLOWED]);

            // Docker's rules back (engine restart), dockfw started, then everything flushed while it runs.
            await h.restartEngine();
            await waitReachable(h, { from: DISALLOWED, to: HOST_A, port });
            expect(await dnatFor(h, port)).not.toEqual([]);
            const dockfw = await startDockfw(h);
            const withDnat = await look();
            const drifts = dockfw.logged(DRIFT).length;
            await h.nft(['flush', 'ruleset']);
            expect(await dnatFor(h, port)).toEqual([]);
            // dockfw's own rules went too: wait for its repair (the watch, or the periodic check).
            const repaired = await dockfw
              .waitForLog(DRIFT, 15_000, drifts + 1)
              .then(() => true)
              .catch(() => false);
            const ready = await waitReady(h, dockfw, 10_000)
              .then(() => true)
              .catch(() => false);
            await waitReachable(h, { from: ALLOWED, to: HOST_A, port }, 10_000).catch(() => undefined);
            const flushedWhileRunning = await look();
            summary({
              suite: title,
              case: 'ipv4 via docker-proxy, nft flush ruleset',
              baseline,
              withDnat,
              repaired,
              ready,
              flushedWhileRunning,
            });
            // Readiness and the repair log are reported; what counts is who gets an answer.
            const recent = dockfw.output().trim().split('\n').slice(-12).join('\n');
            expect({ withDnat, flushedWhileRunning }, recent).toEqual({
              withDnat: [ALLOWED],
              flushedWhileRunning: [ALLOWED],
            });
          } finally {
            await withoutDockfw(h, ['ruleless']);
          }
        });
      }
    });

    describe('live-restore engine restarts', () => {
      let host: TestHost | undefined;
      beforeAll(async () => {
        host = await startHost(['--live-restore']);
      });
      afterAll(() => stopHost(host));

      it(`${RESTARTS} restarts with --live-restore: containers keep running, a disallowed source probing every ${PROBE_INTERVAL_MS} ms never gets an answer`, async () => {
        const h = host;
        if (h === undefined) throw new Error('no test host');
        const names = FLEET.map((m) => m.name);
        try {
          await startFleet(h);
          const open = await TcpProber.start(h.clientNs, {
            from: DISALLOWED,
            targets: restrictedTargets,
            intervalMs: PROBE_INTERVAL_MS,
          });
          const baselineRound = await restartAndSettle(h, FLEET, undefined);
          const baseline = await open.stop();
          // The situation: the same containers ran on through the restart (same process, same address).
          expect(baselineRound.after).toEqual(baselineRound.before);
          expect(totals(baseline).answers).toBeGreaterThan(0);

          const dockfw = await startDockfw(h);
          for (const member of RESTRICTED) {
            expect(await h.reachableFrom({ to: HOST_A, port: member.port }, [DISALLOWED, ALLOWED])).toEqual([
              ALLOWED,
            ]);
          }
          const prober = await TcpProber.start(h.clientNs, {
            from: DISALLOWED,
            targets: restrictedTargets,
            intervalMs: PROBE_INTERVAL_MS,
          });
          let restarts = 0;
          const changed: string[] = [];
          const starts: number[] = [];
          try {
            for (let i = 0; i < RESTARTS; i++) {
              starts.push(Date.now());
              const round = await restartAndSettle(h, FLEET, dockfw);
              restarts++;
              if (JSON.stringify(round.after) !== JSON.stringify(round.before))
                changed.push(`${JSON.stringify(round.before)} -> ${JSON.stringify(round.after)}`);
            }
          } finally {
            const figures = await prober.stop();
            summary({
              suite: title,
              case: 'live-restore engine restarts',
              baseline: totals(baseline),
              probes: totals(figures).sent,
              answers: totals(figures).answers,
              http: totals(figures).http,
              answersPerTarget: answersPerTarget(figures),
              answersPerRestart: answersByRound(figures, starts),
              ...(totals(figures).answers > 0
                ? { aroundAnswers: aroundAnswers(figures, dockfw, starts) }
                : {}),
              restarts,
              swaps: 0,
              containersChanged: changed.length,
            });
            expect(restarts).toBe(RESTARTS);
            expect(changed).toEqual([]);
            expect(totals(figures).sent).toBeGreaterThan(RESTARTS * 100);
            expect(answersPerTarget(figures)).toEqual(
              Object.fromEntries(restrictedTargets.map((t) => [t, 0])),
            );
          }
        } finally {
          await withoutDockfw(h, names);
        }
      });
    });

    describe(`an outside interface named ${WAN}`, () => {
      let host: TestHost | undefined;
      beforeAll(async () => {
        const h = await startHost();
        host = h;
        // Renamed before anything uses it; taking the link down drops its IPv6 addresses: put them back.
        const ip = async (args: string[]) => {
          const result = await h.exec('ip', args);
          if (result.exitCode !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr}`);
          return result.stdout;
        };
        await ip(['link', 'set', EXTERNAL_INTERFACE, 'down']);
        await ip(['link', 'set', EXTERNAL_INTERFACE, 'name', WAN]);
        await ip(['link', 'set', WAN, 'up']);
        const kept = await ip(['-o', 'addr', 'show', 'dev', WAN]);
        for (const address of HOST_ADDRESSES.v4) {
          if (!kept.includes(`${address}/24`)) await ip(['addr', 'add', `${address}/24`, 'dev', WAN]);
        }
        for (const address of HOST_ADDRESSES.v6) {
          if (!kept.includes(`${address}/64`))
            await ip(['addr', 'add', `${address}/64`, 'dev', WAN, 'nodad']);
        }
      });
      afterAll(() => stopHost(host));

      it(`judges packets coming in on ${WAN} (not a Docker bridge, whatever its name)`, async () => {
        const h = host;
        if (h === undefined) throw new Error('no test host');
        // The situation: the outside addresses sit on br-wan, there is no ext0, and Docker has no such bridge.
        const addresses = (await h.exec('ip', ['-o', 'addr', 'show', 'dev', WAN])).stdout;
        for (const address of [...HOST_ADDRESSES.v4, ...HOST_ADDRESSES.v6])
          expect(addresses).toContain(address);
        expect((await h.exec('ip', ['link', 'show', EXTERNAL_INTERFACE])).exitCode).not.toBe(0);
        const bridges = await h.docker(['network', 'ls', '--format', '{{.Name}}']);
        expect(bridges.stdout.split('\n')).not.toContain(WAN);
        const port = 9301;
        try {
          await runContainer(h, 'behind-wan', { ports: [`${port}:80`], allow: ALLOWED });
          await waitReachable(h, { from: DISALLOWED, to: HOST_A, port });
          await waitReachable(h, { from: DISALLOWED_V6, to: HOST_V6, port });
          const look = async () => ({
            v4: await h.reachableFrom({ to: HOST_A, port }, [DISALLOWED, ALLOWED]),
            // An IPv4-only container: IPv6 comes through docker-proxy, and the label lists no IPv6.
            v6: await h.reachableFrom({ to: HOST_V6, port }, [DISALLOWED_V6, ALLOWED_V6]),
          });
          const baseline = await look();
          expect(baseline).toEqual({ v4: [DISALLOWED, ALLOWED], v6: [DISALLOWED_V6, ALLOWED_V6] });
          await startDockfw(h);
          const enforced = await look();
          summary({ suite: title, case: `outside interface ${WAN}`, baseline, withDockfw: enforced });
          expect(enforced).toEqual({ v4: [ALLOWED], v6: [] });
        } finally {
          await withoutDockfw(h, ['behind-wan']);
        }
      });
    });
  });
}
