// `dockfw explain` in-process, offline (--input): exit codes and output forms.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';

const fixture = new URL('../../test/fixtures/example-inspect.json', import.meta.url).pathname;

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

describe('dockfw explain', () => {
  it('has help and is listed', async () => {
    expect(await main(['explain', '--help'])).toBe(0);
    expect(out).toContain('Usage: dockfw explain SOURCE TARGET[/PROTO]');
    out = '';
    expect(await main(['--help'])).toBe(0);
    expect(out).toMatch(/^ {2}explain {2,}/m);
  });

  it('exits 0 for an allowed source, 1 for a denied one, 3 for an unknown target', async () => {
    expect(await main(['explain', '203.0.113.7', '203.0.113.1:80', '--input', fixture])).toBe(0);
    expect(out).toContain('203.0.113.7 → 203.0.113.1:80/tcp: allowed');
    expect(out).toContain('kernel: not checked (offline)');
    out = '';
    expect(await main(['explain', '198.51.100.7', 'shop-web-1:80', '--input', fixture])).toBe(1);
    expect(out).toContain('decided by: dockfw.allow');
    out = '';
    expect(await main(['explain', '198.51.100.7', '203.0.113.1:9999', '--input', fixture])).toBe(3);
    expect(out).toContain('unknown target');
  });

  it('follows the default policy flag', async () => {
    expect(await main(['explain', '198.51.100.7', 'legacy-app:3001', '--input', fixture])).toBe(0);
    expect(
      await main([
        'explain',
        '198.51.100.7',
        'legacy-app:3001',
        '--input',
        fixture,
        '--default-policy',
        'deny',
      ]),
    ).toBe(1);
    expect(out).toContain('default policy (deny)');
  });

  it('prints JSON with --json', async () => {
    expect(await main(['explain', '2001:db8::7', '[2001:db8::1]:9090', '--input', fixture, '--json'])).toBe(
      1,
    );
    const json = JSON.parse(out) as {
      verdict: string;
      kernel: { status: string };
      paths: { kind: string }[];
    };
    expect(json).toMatchObject({ verdict: 'denied', kernel: { status: 'not-checked' } });
    expect(json.paths.map((p) => p.kind)).toEqual(['docker-proxy']);
  });

  it('exits 2 on bad usage and 4 when the input cannot be read', async () => {
    expect(await main(['explain', '203.0.113.7'])).toBe(2);
    expect(await main(['explain', 'nowhere', '203.0.113.1:80', '--input', fixture])).toBe(2);
    expect(await main(['explain', '203.0.113.7', '203.0.113.1:80/http', '--input', fixture])).toBe(2);
    expect(err).toContain('(see dockfw explain --help)');
    expect(await main(['explain', '203.0.113.7', '203.0.113.1:80', '--input', '/nonexistent.json'])).toBe(4);
  });
});
