// The plan and check commands and the dispatcher, run in-process.
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

const fixture = (name: string): string => new URL(`../fixtures/${name}`, import.meta.url).pathname;

let out = '';
let err = '';
beforeEach(() => {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('dockfw', () => {
  it('prints its version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(await main(['--version'])).toBe(0);
    expect(out).toBe(`${version}\n`);
  });

  it('lists its commands', async () => {
    expect(await main(['--help'])).toBe(0);
    expect(out).toMatch(/^ {2}plan {2,}/m);
    expect(out).toMatch(/^ {2}check {2,}/m);
  });

  it('shows usage on stderr without a command', async () => {
    expect(await main([])).toBe(2);
    expect(err).toContain('Usage: dockfw <command>');
    expect(out).toBe('');
  });

  it('refuses an unknown command', async () => {
    expect(await main(['frobnicate'])).toBe(2);
    expect(err).toContain('unknown command "frobnicate"');
  });

  it.each(['plan', 'check'])('%s --help', async (command) => {
    expect(await main([command, '--help'])).toBe(0);
    expect(out).toContain(`Usage: dockfw ${command}`);
  });
});

describe('dockfw plan', () => {
  it('prints one family pipeable, the summary on stderr', async () => {
    expect(await main(['plan', '--input', fixture('example-inspect.json'), '--family', '4'])).toBe(0);
    // One iptables-restore input: the record ipset it needs first (a comment), the
    // mangle table's published bindings, then filter.
    expect(out.startsWith('# first: ipset create -exist dockfw-drops4 hash:ip,port,ip family inet')).toBe(
      true,
    );
    expect(out).toContain('\n*mangle\n');
    expect(out).toContain('COMMIT\n*filter\n');
    expect(out.endsWith('COMMIT\n')).toBe(true);
    expect(out).toContain('-I PREROUTING 1 -j DOCKFW-PRE\n');
    expect(out).toContain('-I DOCKER-USER 1 -j DOCKFW\n');
    expect(out).not.toContain('fd00:');
    expect(err).toContain('shop-web-1 (aac91a707528): enforced');
    expect(err).toContain('metrics: dockfw.allow.9090: "10.0.0.0/33": prefix length must be 0-32');
  });

  it('says what decided each port: the label, the default policy, or an invalid label', async () => {
    expect(await main(['plan', '--input', fixture('example-inspect.json'), '--family', '4'])).toBe(0);
    expect(err).toContain('\n  80/tcp          from 203.0.113.0/24, 2001:db8:100::/48 (dockfw.allow)\n');
    expect(err).toContain('\n  443/tcp         from any (dockfw.allow.443)\n');
    expect(err).toContain('\n  3000-3001/tcp   from any (default policy)\n');
    expect(err).toContain('\n  9090/tcp        from none (invalid label)\n');
  });

  it('prints both families by default', async () => {
    expect(await main(['plan', '--input', fixture('example-inspect.json')])).toBe(0);
    expect(out.match(/^\*filter$/gm)).toHaveLength(2);
    expect(out).toContain('# IPv6: ip6tables-restore --noflush\n');
  });

  it('prints what the nftables backend would apply when it is the one selected', async () => {
    expect(await main(['plan', '--input', fixture('example-inspect.json'), '--backend', 'nftables'])).toBe(0);
    expect(out.startsWith('add table inet dockfw\ndelete table inet dockfw\ntable inet dockfw {\n')).toBe(
      true,
    );
    expect(out).toContain('\tset drops4 {\n');
    expect(out).not.toContain('*filter');
    expect(err).toContain('shop-web-1 (aac91a707528): enforced');
  });

  it('takes configuration flags', async () => {
    expect(
      await main([
        'plan',
        '--input',
        fixture('example-inspect.json'),
        '--family',
        '4',
        '--external-interfaces',
        'eth0',
      ]),
    ).toBe(0);
    expect(out).toContain('-A DOCKFW -i eth0 -j DOCKFW-IN\n');
    expect(out).not.toContain('-i lo');
  });

  it.each([
    [['--family', '5'], '--family must be 4 or 6'],
    [['--default-policy', 'maybe'], '--default-policy="maybe"'],
    [['--bogus'], "Unknown option '--bogus'"],
  ])('exits 2 on %j', async (args, message) => {
    expect(await main(['plan', '--input', fixture('example-inspect.json'), ...args])).toBe(2);
    expect(err).toContain(message);
  });
});

describe('dockfw plan input errors', () => {
  it.each([
    ['no-such-file.json', 'ENOENT'],
    ['compose-ok.yml', 'is not valid JSON'],
    ['multi-network.allow.golden', 'is not valid JSON'],
  ])('%s: exits 1 naming the file', async (name, message) => {
    expect(await main(['plan', '--input', fixture(name)])).toBe(1);
    expect(err).toContain(`dockfw plan: ${fixture(name)}: `);
    expect(err).toContain(message);
    expect(out).toBe('');
  });
});

describe('dockfw check', () => {
  it('passes a good compose file', async () => {
    expect(await main(['check', fixture('compose-ok.yml')])).toBe(0);
    expect(out).toBe('OK: 4 services/containers in 1 file(s), no label problems\n');
  });

  it('accepts a compose file without services', async () => {
    expect(await main(['check', fixture('compose-override.yml')])).toBe(0);
    expect(out).toBe('OK: 0 services/containers in 1 file(s), no label problems\n');
  });

  it('prints one line per problem', async () => {
    const bad = fixture('compose-bad.yml');
    expect(await main(['check', bad, fixture('example-inspect.json')])).toBe(1);
    expect(out.trimEnd().split('\n')).toEqual([
      `${bad}: web: dockfw.allow.443: "10.0.0.0/33": prefix length must be 0-32`,
      `${bad}: admin: dockfw.allow: "10.0.0.1/8": host bits set (address is not the start of a /8 block)`,
      `${bad}: admin: dockfw.allow.8080/http: unknown label; expected dockfw.allow or dockfw.allow.<port>[-<port>][/tcp|udp|sctp]`,
      `${bad}: admin: dockfw.alow: unknown label; dockfw knows dockfw.allow and dockfw.allow.<port>`,
      `${bad}: api: dockfw.allow: "\${OFFICE_NET}": not an IPv4/IPv6 address, CIDR block, range, any or none` +
        ' (compose variables are not expanded here; try docker compose config | dockfw check -)',
      `${bad}: legacy: dockfw.allow: "10.0.0.0/33": prefix length must be 0-32`,
      `${fixture('example-inspect.json')}: metrics: dockfw.allow.9090: "10.0.0.0/33": prefix length must be 0-32`,
    ]);
  });

  it('warns about port labels that match no published container port, without failing', async () => {
    const file = fixture('compose-warn.yml');
    const note = 'port labels name container ports, not host ports';
    const byDefault =
      'decided by the default policy (DOCKFW_DEFAULT_POLICY): no dockfw.allow label covers this published port';
    expect(await main(['check', file])).toBe(0);
    expect(out.trimEnd().split('\n')).toEqual([
      `${file}: web: dockfw.allow.53: warning: the service publishes no such container port (443/tcp, 80/tcp, 7000-7002/tcp, 53/udp); ${note}`,
      `${file}: web: dockfw.allow.8443: warning: the service publishes no such container port (443/tcp, 80/tcp, 7000-7002/tcp, 53/udp); ${note}`,
      `${file}: web: 7000/tcp: warning: ${byDefault}`,
      `${file}: web: 7002/tcp: warning: ${byDefault}`,
      `${file}: internal: dockfw.allow.80: warning: the service publishes no such container port (none); ${note}`,
      'OK: 3 services/containers in 1 file(s), no label problems (5 warning(s))',
    ]);
  });

  it('reports files it cannot read or recognise', async () => {
    const missing = fixture('no-such-file.yml');
    const golden = fixture('example.allow.golden');
    expect(await main(['check', missing, golden])).toBe(1);
    expect(out).toContain(`${missing}: cannot read:`);
    expect(out).toContain(`${golden}:3:1: not valid YAML or JSON: `);
  });

  it('needs at least one file', async () => {
    expect(await main(['check'])).toBe(2);
    expect(err).toContain('no files given');
  });
});
