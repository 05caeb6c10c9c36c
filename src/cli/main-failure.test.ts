// An unexpected failure of a command ends in one line on stderr (the stack only
// at debug level): uninstall as a non-root user, with the iptables tools refusing.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';

vi.mock('../backends/command.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../backends/command.js')>();
  const refuse: import('../backends/command.js').CommandRunner = (file, args) =>
    Promise.reject(
      new original.CommandError(
        `${[file, ...args].join(' ')} failed (exit 4): ${file} v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied\n`,
        file,
        args,
        'Permission denied\n',
        false,
      ),
    );
  return { ...original, commandRunner: () => refuse };
});

let err = '';
beforeEach(() => {
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
  vi.spyOn(process, 'getuid').mockReturnValue(65534);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

describe('a command that fails unexpectedly', () => {
  it('prints one clear line and exits 1', async () => {
    vi.stubEnv('DOCKFW_LOG_LEVEL', '');
    expect(await main(['uninstall'])).toBe(1);
    expect(err).toBe(
      'dockfw uninstall: iptables-nft-save -t filter failed (exit 4): iptables-nft-save v1.8.9 (nf_tables):' +
        ' Could not fetch rule set generation id: Permission denied (run as root)\n',
    );
  });

  it('adds the stack trace at debug level', async () => {
    vi.stubEnv('DOCKFW_LOG_LEVEL', 'debug');
    expect(await main(['uninstall'])).toBe(1);
    const [line, ...stack] = err.trimEnd().split('\n');
    expect(line).toMatch(/^dockfw uninstall: .*Permission denied \(run as root\)$/);
    expect(stack[0]).toMatch(/^CommandError: /);
    expect(stack.some((l) => l.startsWith('    at '))).toBe(true);
  });
});
