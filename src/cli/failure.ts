// What the CLI prints when a command fails unexpectedly: one line a person can act
// on; the stack trace only when debugging. No imports: main.ts loads commands lazily.

/** `--log-level=debug|trace` (or `--log-level debug`), else DOCKFW_LOG_LEVEL. */
export function wantsStack(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  let level = env.DOCKFW_LOG_LEVEL;
  argv.forEach((arg, i) => {
    if (arg.startsWith('--log-level=')) level = arg.slice('--log-level='.length);
    else if (arg === '--log-level') level = argv[i + 1];
  });
  return level === 'debug' || level === 'trace';
}

const PERMISSION = /permission denied|operation not permitted|\bEACCES\b|\bEPERM\b/i;

/**
 * `dockfw <command>: <message>` on one line: multi-line tool output is joined, and a
 * permission error by a non-root user says to run as root (unless the tool said so).
 */
export function failureLine(command: string, error: unknown, isRoot: boolean): string {
  const message = (error instanceof Error ? error.message : String(error))
    .trim()
    .replace(/(:?)\s*\n\s*/g, (_, colon: string) => (colon === '' ? '; ' : ': '));
  const hint = !isRoot && PERMISSION.test(message) && !/\broot\b/.test(message) ? ' (run as root)' : '';
  return `dockfw${command === '' ? '' : ` ${command}`}: ${message || 'failed'}${hint}`;
}

/** The text to write to stderr for a failed command. */
export function failureReport(command: string, error: unknown, stack: boolean, isRoot: boolean): string {
  const line = `${failureLine(command, error, isRoot)}\n`;
  return stack && error instanceof Error && error.stack !== undefined ? `${line}${error.stack}\n` : line;
}
