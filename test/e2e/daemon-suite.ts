/**
 * `dockfw run` against a real engine with real packets: labels in, rules out,
 * probed from outside addresses. One function, parameterised by engine,
 * iptables variant and backend (see suite-firewall.ts for what differs per
 * backend); one small test file per variant calls it, so vitest runs the
 * variants in parallel.
 *
 * Containers are set up once per suite and the tests run in order (later ones
 * stop dockfw, restart it with another policy, uninstall).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_ADDRESSES,
  EXTERNAL_INTERFACE,
  startTestHost,
  TEST_IMAGE,
  type RunContainerOptions,
  type TestHost,
  type TestHostOptions,
} from '../host/index.js';
import { dockfwCommand, DockfwProcess } from './dockfw-process.js';
import { iptablesFirewall, type ContainerRef, type SuiteFirewall } from './suite-firewall.js';

export interface DaemonSuiteOptions extends TestHostOptions {
  /** The engine makes an IPv6 DOCKER-USER (24+); older ones get the jump in ip6tables FORWARD. */
  readonly ipv6UserChain: boolean;
  /** Where dockfw's rules live and how the checks read them; default: iptables. */
  readonly firewall?: SuiteFirewall;
}

const HOST_A = '203.0.113.1';
const HOST_B = '198.51.100.1';
const HOST_V6 = '2001:db8:1::1';
const ALL_V4 = [...CLIENT_ADDRESSES.v4];
/** A client the admin's own DOCKER-USER rule drops, whatever dockfw says. */
const ADMIN_BLOCKED = '203.0.113.13';
const ADMIN_BLOCKED_V6 = '2001:db8:1::13';
const ADMIN_RULE_V4 = `-s ${ADMIN_BLOCKED}/32 -m comment --comment admin-rule -j DROP`;
const ADMIN_RULE_V6 = '-s 2001:db8:1::13/128 -m comment --comment admin-rule -j DROP';
const FAST_RESYNC = '*/2 * * * * *';
const V4_WITHOUT_ADMIN_BLOCKED = ALL_V4.filter((a) => a !== ADMIN_BLOCKED);

function rulesOf(save: string, prefix = '-A DOCKFW'): string[] {
  return save.split('\n').filter((line) => line.startsWith(prefix));
}

export function daemonSuite(title: string, options: DaemonSuiteOptions): void {
  describe(title, () => {
    let host: TestHost;
    let dockfw: DockfwProcess | undefined;
    const ids = new Map<string, string>();
    const fw = options.firewall ?? iptablesFirewall(options.ipv6UserChain);
    const env = (more: Record<string, string>) => ({ ...fw.dockfwEnv(), ...more });

    const save = async (family: 4 | 6): Promise<string> => host.iptablesSave(family, 'filter');
    const owned = async (family: 4 | 6): Promise<string> =>
      (await fw.owned(host))[family === 4 ? 'v4' : 'v6'];
    const id12 = (name: string): string => (ids.get(name) ?? name).slice(0, 12);
    const parentV6 = options.ipv6UserChain ? 'DOCKER-USER' : 'FORWARD';
    const refs = (names: string[]): Promise<ContainerRef[]> =>
      Promise.all(
        names.map(async (name) => {
          const { v4, v6 } = await host.containerAddresses(name);
          return { id12: id12(name), addresses: [...v4, ...v6] };
        }),
      );

    /** Polls the kernel until `check` holds for dockfw's IPv4 (and IPv6) rules. */
    async function waitForKernel(
      what: string,
      check: (v4: string, v6: string) => boolean,
      timeoutMs = 15_000,
    ): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { v4, v6 } = await fw.owned(host);
        // The engine's own firewall (a fixture on some layouts) has caught up too.
        if (check(v4, v6)) return fw.settled();
        if (Date.now() > deadline) {
          throw new Error(`timed out waiting for ${what}\n${v4}\n${v6}\n${dockfw?.output() ?? ''}`);
        }
        await sleep(50);
      }
    }

    const hasRulesFor = (ref: ContainerRef) => (v4: string) => fw.judges(v4, ref);
    /** Checks of the iptables layout itself (other backends have no such thing). */
    const itIptables = (name: string, fn: () => Promise<void>): void => {
      if (fw.backend === 'iptables') it(name, fn);
    };
    /** Syncs so far: each logs one line per family; count the IPv4 ones. */
    const syncsLogged = (): number =>
      dockfw?.records.filter(
        (r) =>
          r.family === 'ipv4' &&
          ['firewall in sync', 'rules applied', 'drift found: re-applied the rules'].includes(r.msg),
      ).length ?? 0;

    async function run(name: string, runOptions: Omit<RunContainerOptions, 'name'>): Promise<void> {
      const started = await host.runContainer({ ...runOptions, name });
      ids.set(name, started.id);
    }

    beforeAll(async () => {
      host = await startTestHost({
        engine: options.engine,
        iptables: options.iptables,
        ipv6: true,
        dockerdArgs: [...fw.dockerdArgs],
      });
      await fw.setUp(host);
      // The admin's own rules (iptables: first in the chains dockfw jumps from).
      await fw.addAdminRule(host, ADMIN_BLOCKED, ADMIN_BLOCKED_V6);
      await host.docker(['network', 'create', 'second']);
      await host.docker(['network', 'create', '--subnet', '172.30.0.0/24', 'moving']);
      await host.docker(['network', 'create', '--ipv6', '--subnet', '2001:db8:2::/64', 'v6net']);

      // Some containers exist before dockfw starts (its first list), the rest
      // appear while it runs (events).
      await Promise.all([
        run('one', { ports: ['8081:80'], labels: { 'dockfw.allow': '203.0.113.10' } }),
        run('open', { ports: ['8088:80'] }),
      ]);
      dockfw = DockfwProcess.start(host, env({ DOCKFW_RESYNC: FAST_RESYNC, DOCKFW_LOG_LEVEL: 'debug' }));
      await dockfw.waitForLog('connected to docker');
      await Promise.all([
        run('subnet', { ports: ['8082:80'], labels: { 'dockfw.allow': '198.51.100.0/24' } }),
        run('range', { ports: ['8083:80'], labels: { 'dockfw.allow': '203.0.113.10-203.0.113.11' } }),
        run('one-address', { ports: [`${HOST_A}:8084:80`], labels: { 'dockfw.allow': '203.0.113.11' } }),
        run('per-port', {
          ports: ['8085:80', '8086:81'],
          labels: { 'dockfw.allow.80': '203.0.113.10', 'dockfw.allow.81': 'any' },
        }),
        run('udp', { ports: ['5353:53/udp'], labels: { 'dockfw.allow': '203.0.113.11' } }),
        run('v6', {
          network: 'v6net',
          ports: [`[${HOST_V6}]:8087:80`],
          labels: { 'dockfw.allow': '2001:db8:1::10' },
        }),
        run('multi', { ports: ['8089:80'], labels: { 'dockfw.allow': '203.0.113.12' } }),
        run('invalid', { ports: ['8090:80'], labels: { 'dockfw.allow': '203.0.113.0/33' } }),
        run('peer', {}),
      ]);
      await host.docker(['network', 'connect', 'second', 'multi']);
      const all = await refs([
        'one',
        'open',
        'subnet',
        'range',
        'one-address',
        'per-port',
        'udp',
        'v6',
        'multi',
        'invalid',
      ]);
      await waitForKernel('rules for every container', (v4, v6) =>
        all.every((ref) => hasRulesFor(ref)(v4) || hasRulesFor(ref)(v6)),
      );
      // The second network's address too.
      const multi = await host.containerAddresses('multi');
      expect(multi.v4).toHaveLength(2);
      await waitForKernel('rules for both addresses of multi', (v4) =>
        multi.v4.every((a) => fw.mentions(v4, a)),
      );
    });

    afterAll(async () => {
      await DockfwProcess.stopAll();
      await fw.tearDown();
      await host?.stop();
    });

    it('enforces the documented label forms: one address, a subnet, a range, one host address', async () => {
      const [one, subnet, range, hostA, hostB] = await Promise.all([
        host.reachableFrom({ to: HOST_A, port: 8081 }),
        host.reachableFrom({ to: HOST_B, port: 8082 }),
        host.reachableFrom({ to: HOST_A, port: 8083 }),
        host.reachableFrom({ to: HOST_A, port: 8084 }),
        host.reachableFrom({ to: HOST_B, port: 8084 }),
      ]);
      expect(one).toEqual(['203.0.113.10']);
      expect(subnet).toEqual(['198.51.100.10', '198.51.100.11']);
      expect(range).toEqual(['203.0.113.10', '203.0.113.11']);
      expect(hostA).toEqual(['203.0.113.11']);
      expect(hostB).toEqual([]);
    });

    // `plan` prints the iptables layout.
    itIptables('plan without --input reads the live engine and prints what run applies', async () => {
      const plan = await dockfwCommand(host, ['plan', '--family', '4']);
      expect(plan.exitCode, plan.stderr).toBe(0);
      const [address] = (await host.containerAddresses('one')).v4;
      const planned = rulesOf(plan.stdout, '-A DOCKFW');
      expect(planned).toContain('-A DOCKFW-IN -m set --match-set dockfw-allowed4 dst,dst,src -j RETURN');
      // The verdicts: `plan --sets` prints the elements run puts in the sets.
      const sets = await dockfwCommand(host, ['plan', '--family', '4', '--sets']);
      expect(sets.exitCode, sets.stderr).toBe(0);
      expect(sets.stdout).toContain(`\nadd dockfw-allowed4-t ${address},tcp:80,203.0.113.10\n`);
      const kernelSets = await host.exec('ipset', ['save', 'dockfw-allowed4']);
      expect(kernelSets.stdout).toContain(`add dockfw-allowed4 ${address},tcp:80,203.0.113.10`);
      // Both tables: the published bindings (mangle) and the forward rules (filter),
      // chain by chain (iptables-save lists a table's chains by name).
      const kernel = (await host.iptablesSave(4, 'mangle')) + (await save(4));
      const byChain = (rules: string[]) => [...rules].sort((a, b) => chainOf(a).localeCompare(chainOf(b)));
      const chainOf = (rule: string) => rule.split(' ')[1] ?? '';
      expect(byChain(planned)).toEqual(byChain(rulesOf(kernel, '-A DOCKFW')));
      expect(plan.stderr).toMatch(/invalid.*dockfw\.allow/s);
    });

    it('enforces per-port labels, UDP, IPv6 and a container on two networks', async () => {
      const [port80, port81, udp, v6, v6overV4, multi] = await Promise.all([
        host.reachableFrom({ to: HOST_A, port: 8085 }),
        host.reachableFrom({ to: HOST_A, port: 8086 }),
        host.reachableFrom({ to: HOST_A, port: 5353, proto: 'udp' }),
        host.reachableFrom({ to: HOST_V6, port: 8087 }),
        host.reachableFrom({ to: HOST_A, port: 8087 }),
        host.reachableFrom({ to: HOST_B, port: 8089 }),
      ]);
      expect(port80).toEqual(['203.0.113.10']);
      // `any` still meets the admin's rule after dockfw's RETURN.
      expect(port81).toEqual(V4_WITHOUT_ADMIN_BLOCKED);
      expect(udp).toEqual(['203.0.113.11']);
      expect(v6).toEqual(['2001:db8:1::10']);
      expect(v6overV4).toEqual([]);
      expect(multi).toEqual(['203.0.113.12']);
    });

    it('leaves unlabeled containers open under policy allow, closes one with an invalid label and says why once', async () => {
      const [open, invalid] = await Promise.all([
        host.reachableFrom({ to: HOST_A, port: 8088 }),
        host.reachableFrom({ to: HOST_A, port: 8090 }),
      ]);
      expect(open).toEqual(V4_WITHOUT_ADMIN_BLOCKED);
      expect(invalid).toEqual([]);
      const complaints = dockfw?.logged('invalid dockfw label: container closed') ?? [];
      expect(complaints).toHaveLength(1);
      expect(complaints[0]).toMatchObject({ level: 40, container: 'invalid', label: 'dockfw.allow' });
      expect(String(complaints[0]?.problem)).toMatch(/33/);
    });

    it('does not touch container-to-container traffic or the host’s own connections', async () => {
      const [oneAddress] = (await host.containerAddresses('one')).v4;
      const [invalidAddress] = (await host.containerAddresses('invalid')).v4;
      expect(oneAddress).toBeDefined();
      const targets = [oneAddress ?? '', invalidAddress ?? ''];
      for (const to of targets) {
        expect(await host.probeFromContainer('peer', { to, port: 80 })).toBe('reached');
        expect(await host.probeFromEngine({ to, port: 80 })).toBe('reached');
      }
      expect(await host.probeFromEngine({ to: HOST_A, port: 8081 })).toBe('reached');
      expect(await host.probeFromEngine({ to: '127.0.0.1', port: 8090 })).toBe('reached');
    });

    itIptables('keeps exactly one jump first and the admin’s rule right after it', async () => {
      const v4 = await save(4);
      expect(rulesOf(v4, '-A DOCKER-USER')).toEqual([
        '-A DOCKER-USER -j DOCKFW',
        `-A DOCKER-USER ${ADMIN_RULE_V4}`,
        ...(options.engine === '20.10' ? ['-A DOCKER-USER -j RETURN'] : []),
      ]);
      // In ip6tables FORWARD (old engines) Docker inserts its own rules on top
      // when it makes a network; dockfw keeps its jump first, the admin's rule stays.
      const v6 = rulesOf(await save(6), `-A ${parentV6}`);
      expect(v6[0]).toBe(`-A ${parentV6} -j DOCKFW`);
      expect(v6.filter((r) => r === `-A ${parentV6} ${ADMIN_RULE_V6}`)).toHaveLength(1);
      expect(v6.filter((r) => r.includes('DOCKFW'))).toHaveLength(1);
    });

    it('keeps the admin’s rule; the periodic check writes nothing when nothing drifted', async () => {
      expect(await fw.adminRuleIntact(host)).toBe(true);
      const writes = () =>
        (dockfw?.logged('rules applied').length ?? 0) +
        (dockfw?.logged('drift found: re-applied the rules').length ?? 0);
      const periodic = () =>
        dockfw?.records.filter((r) => r.msg === 'firewall in sync' && String(r.reasons) === 'periodic')
          .length ?? 0;
      const before = { writes: writes(), periodic: periodic() };
      await expect
        .poll(periodic, { timeout: 10_000, interval: 200 })
        .toBeGreaterThanOrEqual(before.periodic + 4);
      expect(writes()).toBe(before.writes);
    });

    it('puts flushed rules back at the next periodic check and says what was missing', async () => {
      const before = fw.ruleLines(await owned(4));
      const seen = dockfw?.logged('drift found: re-applied the rules').length ?? 0;
      const damage = await fw.damage(host);
      const drift = await dockfw?.waitForLog('drift found: re-applied the rules', 10_000, seen + 1);
      expect(drift).toMatchObject({ family: 'ipv4', added: damage.added, removed: 0 });
      expect(drift?.missing).toContain(damage.missing);
      expect(fw.ruleLines(await owned(4))).toEqual(before);
      expect(await host.reachableFrom({ to: HOST_A, port: 8081 })).toEqual(['203.0.113.10']);
    });

    it('start-up window: a disallowed client probing in a tight loop never gets an answer', async () => {
      const allowed = '203.0.113.10';
      const disallowed = ['203.0.113.11', '198.51.100.10', '198.51.100.11'];
      let stop = false;
      let probes = 0;
      const answered: string[] = [];
      const loops = disallowed.flatMap((from) =>
        [0, 1].map(async () => {
          while (!stop) {
            probes++;
            if ((await host.probe({ from, to: HOST_A, port: 8091, timeoutMs: 250 })) === 'reached')
              answered.push(from);
          }
        }),
      );
      try {
        for (let round = 0; round < 6; round++) {
          await host.docker([
            'run',
            '-d',
            '--name',
            'flap',
            '-p',
            '8091:80',
            '-l',
            `dockfw.allow=${allowed}`,
            TEST_IMAGE,
          ]);
          // Up and answering the allowed client: the window is over.
          await expect
            .poll(() => host.probe({ from: allowed, to: HOST_A, port: 8091, timeoutMs: 250 }), {
              timeout: 10_000,
              interval: 20,
            })
            .toBe('reached');
          await host.docker(['rm', '-f', 'flap']);
        }
      } finally {
        stop = true;
        await Promise.all(loops);
      }
      expect(probes).toBeGreaterThan(30);
      expect(answered).toEqual([]);
    });

    it('follows an address change (restarted with another address)', async () => {
      await host.docker([
        'run',
        '-d',
        '--name',
        'mover',
        '--network',
        'moving',
        '--ip',
        '172.30.0.50',
        '-p',
        '8092:80',
        '-l',
        'dockfw.allow=203.0.113.11',
        TEST_IMAGE,
      ]);
      ids.set('mover', (await host.docker(['inspect', '--format', '{{.Id}}', 'mover'])).stdout.trim());
      await waitForKernel('rules for 172.30.0.50', (v4) => fw.mentions(v4, '172.30.0.50'));
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8092 }), { timeout: 10_000, interval: 100 })
        .toEqual(['203.0.113.11']);
      await host.docker(['stop', 'mover']);
      await host.docker(['network', 'disconnect', 'moving', 'mover']);
      await host.docker(['network', 'connect', '--ip', '172.30.0.60', 'moving', 'mover']);
      await host.docker(['start', 'mover']);
      await waitForKernel(
        'rules to follow the new address',
        (v4) => fw.mentions(v4, '172.30.0.60') && !fw.mentions(v4, '172.30.0.50'),
      );
      // The container may still be starting its server: wait for the allowed client.
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8092 }), { timeout: 10_000, interval: 100 })
        .toEqual(['203.0.113.11']);
    });

    it('leaves no owned rule behind when a container is removed', async () => {
      const gone = ['mover', 'per-port', 'v6'];
      const count = () => ({ events: dockfw?.logged('docker event').length ?? 0, syncs: syncsLogged() });
      const goneRefs = await refs(gone);
      const before = count();
      const started = Date.now();
      await host.docker(['rm', '-f', ...gone]);
      await waitForKernel('rules of removed containers to go', (v4, v6) =>
        goneRefs.every((ref) => !fw.judges(v4, ref) && !fw.judges(v6, ref)),
      );
      const [one] = await refs(['one']);
      expect(one && hasRulesFor(one)(await owned(4))).toBe(true);
      // The burst (kill, die, disconnect, stop, destroy per container) costs a few
      // syncs, not one per event: the runner starts at most 2 + one per 100 ms,
      // plus the one that was running when the burst began.
      await sleep(300);
      const after = count();
      const elapsed = Date.now() - started;
      const events = after.events - before.events;
      const syncs = after.syncs - before.syncs;
      expect(events).toBeGreaterThanOrEqual(3 * gone.length);
      expect(syncs).toBeLessThan(events);
      expect(syncs).toBeLessThanOrEqual(3 + Math.floor(elapsed / 100));
    });

    it('on SIGTERM exits promptly and leaves the rules in place; restarted with policy deny, closes unlabeled containers', async () => {
      const before = fw.ruleLines(await owned(4));
      const stopped = await dockfw?.stop();
      expect(stopped, dockfw?.output()).toMatchObject({ code: 0, signal: null });
      expect(stopped?.ms).toBeLessThan(3000);
      expect(fw.ruleLines(await owned(4))).toEqual(before);
      // Still enforced with nobody watching.
      expect(await host.reachableFrom({ to: HOST_A, port: 8081 })).toEqual(['203.0.113.10']);

      // This time "outside" is named: only packets coming in on ext0 are judged.
      dockfw = DockfwProcess.start(
        host,
        env({
          DOCKFW_DEFAULT_POLICY: 'deny',
          DOCKFW_EXTERNAL_INTERFACES: EXTERNAL_INTERFACE,
          DOCKFW_LOG_LEVEL: 'debug',
        }),
      );
      const [openAddress] = (await host.containerAddresses('open')).v4;
      await waitForKernel('the unlabeled container to get a DROP', (v4) =>
        fw.closes(v4, openAddress ?? '', 80),
      );
      expect(await host.reachableFrom({ to: HOST_A, port: 8088 })).toEqual([]);
      expect(await host.reachableFrom({ to: HOST_A, port: 8081 })).toEqual(['203.0.113.10']);
      expect(fw.judgesOnly(await owned(4), EXTERNAL_INTERFACE)).toBe(true);
      expect(await host.probeFromContainer('peer', { to: openAddress ?? '', port: 80 })).toBe('reached');
    });

    it('keeps the rules while the engine restarts, says so once, reconnects and follows the restarted container', async () => {
      await host.docker([
        'run',
        '-d',
        '--restart',
        'always',
        '--name',
        'phoenix',
        '-p',
        '8094:80',
        '-l',
        'dockfw.allow=203.0.113.12',
        TEST_IMAGE,
      ]);
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8094 }), { timeout: 10_000, interval: 100 })
        .toEqual(['203.0.113.12']);
      const unreachable = 'docker unreachable: keeping rules, retrying';
      const seen = {
        down: dockfw?.logged(unreachable).length ?? 0,
        up: dockfw?.logged('connected to docker').length ?? 0,
      };
      await host.restartEngine();
      await dockfw?.waitForLog('connected to docker', 20_000, seen.up + 1);
      expect(dockfw?.logged(unreachable).length).toBe(seen.down + 1);
      const [address] = (await host.containerAddresses('phoenix')).v4;
      await waitForKernel('rules for the restarted container', (v4) =>
        fw.allows(v4, address ?? '', 80, '203.0.113.12'),
      );
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8094 }), { timeout: 10_000, interval: 100 })
        .toEqual(['203.0.113.12']);
    });

    it('uninstall removes every owned rule, chain and jump, and nothing else', async () => {
      await dockfw?.stop();
      const others = await fw.others(host);
      const result = await dockfwCommand(host, ['uninstall'], fw.dockfwEnv());
      expect(result.exitCode, result.stderr).toBe(0);
      expect(await fw.anyOwned(host)).toBe(false);
      expect(await fw.others(host)).toEqual(others);
      expect(await fw.adminRuleIntact(host)).toBe(true);
      // Docker's own forwarding is back to what it was without dockfw.
      expect(await host.reachableFrom({ to: HOST_A, port: 8094 })).toEqual(V4_WITHOUT_ADMIN_BLOCKED);
      const again = await dockfwCommand(host, ['uninstall'], fw.dockfwEnv());
      expect(again.stdout).toContain('nothing to remove');
    });
  });
}
