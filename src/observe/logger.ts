// One logger for the whole process: static messages plus a metadata object.
// JSON lines by default (for log collectors); pretty output when a person watches
// a terminal.
import { destination, pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  readonly level?: LevelWithSilent;
  /** Defaults to "stdout is a TTY". */
  readonly pretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  // Synchronous writes: a sidecar logs little, and nothing is lost when it is
  // stopped or killed right after a line.
  return pino({ level, base: { name: 'dockfw' } }, destination({ dest: 1, sync: true }));
}

/** A logger that drops everything; for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
