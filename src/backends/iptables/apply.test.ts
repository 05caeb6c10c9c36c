import { describe, expect, it } from 'vitest';
import { ApplyError, applyPayload, failedLineNumber } from './apply.js';
import { CommandError, type CommandRunner } from '../command.js';

describe('failedLineNumber', () => {
  it('reads the line iptables-restore blames, in both variants', () => {
    expect(failedLineNumber('iptables-nft-restore: line 3 failed: No chain/target/match by that name.')).toBe(
      3,
    );
    expect(failedLineNumber('iptables-restore: line 12 failed\n')).toBe(12);
    expect(
      failedLineNumber(
        "iptables-restore v1.8.9 (legacy): Couldn't load match `foo':No such file or directory\n\nError occurred at line: 7\n",
      ),
    ).toBe(7);
    expect(failedLineNumber('Another app is currently holding the xtables lock.')).toBeUndefined();
  });
});

describe('applyPayload', () => {
  it('feeds the payload to the variant’s restore with --noflush -w', async () => {
    const calls: { file: string; args: readonly string[]; input: string | undefined }[] = [];
    const run: CommandRunner = (file, args, input) => {
      calls.push({ file, args, input });
      return Promise.resolve({ stdout: '' });
    };
    await applyPayload(run, 6, 'legacy', '*filter\nCOMMIT\n');
    expect(calls).toEqual([
      { file: 'ip6tables-legacy-restore', args: ['--noflush', '-w'], input: '*filter\nCOMMIT\n' },
    ]);
  });

  it('names the rejected payload line', async () => {
    const run: CommandRunner = (file, args) =>
      Promise.reject(
        new CommandError(
          'iptables-nft-restore failed',
          file,
          args,
          'iptables-nft-restore: line 2 failed',
          false,
        ),
      );
    const error = await applyPayload(run, 4, 'nft', '*filter\n-A DOCKFW -j NOPE\nCOMMIT\n').catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApplyError);
    expect((error as ApplyError).offendingLine).toBe('-A DOCKFW -j NOPE');
    expect((error as ApplyError).message).toContain('at line 2: -A DOCKFW -j NOPE');
  });

  it('lets a missing binary through as is', async () => {
    const missing = new CommandError('iptables-nft-restore not found', 'x', [], '', true);
    const run: CommandRunner = () => Promise.reject(missing);
    await expect(applyPayload(run, 4, 'nft', '')).rejects.toBe(missing);
  });
});
