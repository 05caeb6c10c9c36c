import { describe, expect, it } from 'vitest';
import { failureLine, failureReport, wantsStack } from './failure.js';

describe('failureLine', () => {
  it('names the command and joins multi-line tool output into one line', () => {
    const error = new Error(
      'iptables-restore failed (exit 1):\n  line 3 failed\nError occurred at line: 3\n',
    );
    expect(failureLine('run', error, true)).toBe(
      'dockfw run: iptables-restore failed (exit 1): line 3 failed; Error occurred at line: 3',
    );
  });

  it('tells a non-root user to run as root on a permission error', () => {
    const error = new Error('nft list table inet dockfw failed (exit 1): Operation not permitted');
    expect(failureLine('uninstall', error, false)).toBe(
      'dockfw uninstall: nft list table inet dockfw failed (exit 1): Operation not permitted (run as root)',
    );
    expect(failureLine('uninstall', error, true)).not.toContain('run as root');
  });

  it('adds no hint when the tool already says so, or for other errors', () => {
    expect(failureLine('guard', new Error('Permission denied (you must be root)'), false)).toBe(
      'dockfw guard: Permission denied (you must be root)',
    );
    expect(failureLine('plan', new Error('connect ENOENT /x'), false)).toBe('dockfw plan: connect ENOENT /x');
  });

  it('works without a command name and for thrown non-errors', () => {
    expect(failureLine('', 'boom', true)).toBe('dockfw: boom');
    expect(failureLine('check', new Error(''), true)).toBe('dockfw check: failed');
  });
});

describe('failureReport', () => {
  it('is one line unless the stack is wanted', () => {
    const error = new Error('boom');
    expect(failureReport('plan', error, false, true)).toBe('dockfw plan: boom\n');
    const withStack = failureReport('plan', error, true, true);
    expect(withStack.startsWith('dockfw plan: boom\nError: boom\n')).toBe(true);
    expect(withStack).toMatch(/^ {4}at /m);
  });
});

describe('wantsStack', () => {
  it('follows --log-level, else DOCKFW_LOG_LEVEL', () => {
    expect(wantsStack([], {})).toBe(false);
    expect(wantsStack([], { DOCKFW_LOG_LEVEL: 'debug' })).toBe(true);
    expect(wantsStack([], { DOCKFW_LOG_LEVEL: 'trace' })).toBe(true);
    expect(wantsStack([], { DOCKFW_LOG_LEVEL: 'info' })).toBe(false);
    expect(wantsStack(['--log-level=debug'], {})).toBe(true);
    expect(wantsStack(['--log-level', 'trace'], {})).toBe(true);
    expect(wantsStack(['--log-level=warn'], { DOCKFW_LOG_LEVEL: 'debug' })).toBe(false);
  });
});
