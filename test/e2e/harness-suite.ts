/**
 * Self-tests of the test host (test/host/): rules written by hand exactly as
 * Docker's documentation suggests must have the documented effect on a real
 * engine. One variant per test file, so vitest runs the variants in parallel.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_ADDRESSES,
  EXTERNAL_INTERFACE,
  startTestHost,
  type Family,
  type TestHost,
  type TestHostOptions,
} from '../host/index.js';

const EXT = EXTERNAL_INTERFACE;
const HOST_A = '203.0.113.1';
const HOST_B = '198.51.100.1';
const HOST_V6 = '2001:db8:1::1';
const ALL_V4 = [...CLIENT_ADDRESSES.v4];
const ALL_V6 = [...CLIENT_ADDRESSES.v6];

export function harnessSuite(title: string, options: TestHostOptions): void {
  describe(title, () => {
    let host: TestHost;
    // Rules a test inserted, removed again after it so tests stay independent.
    let inserted: { family: Family; chain: string; rule: string[] }[] = [];

    async function insertRule(family: Family, rule: string[], chain = 'DOCKER-USER'): Promise<void> {
      await host.iptables(family, ['-I', chain, ...rule]);
      inserted.push({ family, chain, rule });
    }

    beforeAll(async () => {
      host = await startTestHost({ ...options, ipv6: true });
      // Published on every address, TCP and UDP.
      await host.runContainer({ name: 'web', ports: ['8080:80', '8053:53/udp'] });
      // Published on one of the host's two IPv4 addresses only.
      await host.runContainer({ name: 'web-a', ports: [`${HOST_A}:8081:80`] });
      // Not published; only other containers and the host reach it.
      await host.runContainer({ name: 'inner' });
      await host.docker(['network', 'create', '--ipv6', '--subnet', '2001:db8:2::/64', 'v6net']);
      await host.runContainer({
        name: 'web-v6',
        network: 'v6net',
        ports: [`[${HOST_V6}]:8090:80`, `[${HOST_V6}]:8091:53/udp`],
      });
    });

    afterEach(async () => {
      for (const { family, chain, rule } of inserted.reverse()) {
        await host.iptables(family, ['-D', chain, ...rule]);
      }
      inserted = [];
    });

    afterAll(async () => {
      await host?.stop();
    });

    it('dockerd writes its rules with the chosen iptables variant, inside its namespace', async () => {
      const nftRuleset = await host.nft(['list', 'ruleset']);
      const legacyRules = (await host.exec('iptables-legacy-save', [])).stdout;
      if (options.iptables === 'nft') {
        expect(nftRuleset).toContain('chain DOCKER-USER');
        expect(legacyRules).not.toContain('DOCKER');
      } else {
        expect(legacyRules).toContain(':DOCKER-USER');
        expect(nftRuleset).not.toContain('DOCKER');
      }
    });

    it('a published port is reached from every outside address without rules', async () => {
      // The baseline: open for everyone. Polled, as a probe of a loaded host may time out once (seen in CI).
      const open = { timeout: 10_000, interval: 500 };
      await expect.poll(() => host.reachableFrom({ to: HOST_A, port: 8080 }), open).toEqual(ALL_V4);
      await expect.poll(() => host.reachableFrom({ to: HOST_B, port: 8080 }), open).toEqual(ALL_V4);
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8053, proto: 'udp' }), open)
        .toEqual(ALL_V4);
    });

    it('DOCKER-USER "! -s ADDR -j DROP" lets only that address through', async () => {
      await insertRule(4, ['-i', EXT, '!', '-s', '203.0.113.11', '-j', 'DROP']);
      expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.11']);
      expect(await host.reachableFrom({ to: HOST_A, port: 8053, proto: 'udp' })).toEqual(['203.0.113.11']);
    });

    it('the same with a subnet', async () => {
      await insertRule(4, ['-i', EXT, '!', '-s', '198.51.100.0/24', '-j', 'DROP']);
      expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual([
        '198.51.100.10',
        '198.51.100.11',
      ]);
    });

    it('the same with -m iprange --src-range', async () => {
      await insertRule(4, [
        '-m',
        'iprange',
        '-i',
        EXT,
        '!',
        '--src-range',
        '203.0.113.11-203.0.113.12',
        '-j',
        'DROP',
      ]);
      expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.11', '203.0.113.12']);
    });

    it('conntrack --ctorigdst/--ctorigdstport restricts one published address:port only', async () => {
      const origDst = ['-p', 'tcp', '-m', 'conntrack', '--ctorigdst', HOST_A, '--ctorigdstport', '8081'];
      await insertRule(4, ['-i', EXT, ...origDst, '-j', 'DROP']);
      await insertRule(4, ['-i', EXT, '-s', '203.0.113.11', ...origDst, '-j', 'ACCEPT']);
      expect(await host.reachableFrom({ to: HOST_A, port: 8081 })).toEqual(['203.0.113.11']);
      // Not published on the other address at all, and the other container is untouched.
      expect(await host.reachableFrom({ to: HOST_B, port: 8081 })).toEqual([]);
      expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(ALL_V4);
    });

    it('IPv6: a port published on the host IPv6 address, restricted with ip6tables', async () => {
      expect(await host.reachableFrom({ to: HOST_V6, port: 8090 })).toEqual(ALL_V6);
      expect(await host.reachableFrom({ to: HOST_V6, port: 8091, proto: 'udp' })).toEqual(ALL_V6);
      // Docker 20.10 (--experimental --ip6tables) makes no IPv6 DOCKER-USER; admins use FORWARD there.
      const chains = await host.iptables(6, ['-S']);
      const hasUserChain = chains.split('\n').includes('-N DOCKER-USER');
      expect(hasUserChain).toBe(options.engine !== '20.10');
      const chain = hasUserChain ? 'DOCKER-USER' : 'FORWARD';
      await insertRule(6, ['-i', EXT, '!', '-s', '2001:db8:1::11', '-j', 'DROP'], chain);
      expect(await host.reachableFrom({ to: HOST_V6, port: 8090 })).toEqual(['2001:db8:1::11']);
      expect(await host.reachableFrom({ to: HOST_V6, port: 8091, proto: 'udp' })).toEqual(['2001:db8:1::11']);
    });

    it('container-to-container and host traffic still flow with the rules in place', async () => {
      await insertRule(4, ['-i', EXT, '!', '-s', '203.0.113.11', '-j', 'DROP']);
      const [webAddress] = (await host.containerAddresses('web')).v4;
      expect(webAddress).toBeDefined();
      const web = webAddress ?? '';
      expect(await host.probeFromContainer('inner', { to: web, port: 80 })).toBe('reached');
      // Through the published port on the host's address (hairpin).
      expect(await host.probeFromContainer('inner', { to: HOST_A, port: 8080 })).toBe('reached');
      expect(await host.probeFromEngine({ to: web, port: 80 })).toBe('reached');
      expect(await host.probeFromEngine({ to: HOST_A, port: 8080 })).toBe('reached');
      // The rule is in force for outside traffic at the same time.
      expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(['203.0.113.11']);
    });

    it('direct access to a container address from outside: dropped by 28.5, let through by 20.10', async () => {
      const [webAddress] = (await host.containerAddresses('web')).v4;
      expect(webAddress).toBeDefined();
      const direct = await host.reachableFrom({ to: webAddress ?? '', port: 80 });
      // 28.x drops packets for container addresses that do not come from the bridge (raw table);
      // 20.10 accepts them for published container ports.
      expect(direct).toEqual(options.engine === '20.10' ? ALL_V4 : []);
      expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual(ALL_V4);
    });

    it('docker compose (v2 plugin) publishes a service that the client reaches', async () => {
      const file = path.join(host.layout.dir, 'compose.yml');
      await writeFile(file, 'services:\n  web:\n    image: dfw-busybox:local\n    ports: ["8085:80"]\n');
      await host.compose(['-p', 'harness', '-f', file, 'up', '-d']);
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8085 }), { timeout: 10_000, interval: 300 })
        .toEqual(ALL_V4);
      await host.compose(['-p', 'harness', '-f', file, 'down']);
      expect(await host.reachableFrom({ to: HOST_A, port: 8085 })).toEqual([]);
    });

    it('after an engine restart the rules remain and a --restart always container is back', async () => {
      await host.runContainer({ name: 'web-always', ports: ['8083:80'], restart: 'always' });
      const rule = ['-i', EXT, '!', '-s', '203.0.113.11', '-j', 'DROP'];
      await insertRule(4, rule);
      await host.restartEngine();

      const chain = await host.iptables(4, ['-S', 'DOCKER-USER']);
      expect(chain).toContain(`-A DOCKER-USER ! -s 203.0.113.11/32 -i ${EXT} -j DROP`);
      await expect
        .poll(() => host.reachableFrom({ to: HOST_A, port: 8083 }), { timeout: 20_000, interval: 500 })
        .toEqual(['203.0.113.11']);
    });
  });
}
