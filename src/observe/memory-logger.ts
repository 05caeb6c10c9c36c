// A logger that keeps its records in memory, for tests that assert on logs.
import { Writable } from 'node:stream';
import { pino, type LevelWithSilent, type Logger } from 'pino';

export interface LogRecord {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export function memoryLogger(level: LevelWithSilent = 'debug'): {
  logger: Logger;
  records: LogRecord[];
} {
  const records: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line !== '') records.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { logger: pino({ level }, sink), records };
}
