/**
 * Figures 4 and 5 come from bench/recovery.ts (repair after an outside flush,
 * engine restart), run as it is (its own test host) with its figures parsed
 * from the summary lines it prints.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BUILD_DIR, track } from './lib.js';
import type { Report } from './report.js';

interface Summary {
  readonly name: string;
  readonly median: number;
  readonly p99: number;
  readonly text: string;
}

const LINE = /^(.+): median (\d+) ms, p99 (\d+) ms, max \d+ ms \(n=\d+\)$/;

function targetFor(name: string, p99: number): { target: string; met?: boolean; ifMissed?: string } {
  if (name.includes('ruleset watch'))
    return {
      target: 'p99 under 1 s',
      met: p99 < 1000,
      ifMissed:
        'Why and what would meet it: see bench/recovery.ts and the daemon log it checks (the watch debounces 100 ms, at most 500 ms, then runs a full sync).',
    };
  return { target: '' };
}

export async function recoveryBench(report: Report, rounds: number): Promise<void> {
  report.section('Repair after an outside flush, engine restart (bench/recovery.ts)');
  const child = track(
    spawn(process.execPath, [path.join(BUILD_DIR, 'recovery.js')], {
      env: { ...process.env, ROUNDS: String(rounds) },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const summaries: Summary[] = [];
  let buffer = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      const match = LINE.exec(line.trim());
      if (match?.[1] !== undefined) {
        summaries.push({
          name: match[1],
          median: Number(match[2]),
          p99: Number(match[3]),
          text: line.trim(),
        });
      } else if (line.trim() !== '') process.stdout.write(`  recovery.ts: ${line}\n`);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  for (const s of summaries) {
    report.figure({
      name: s.name,
      value: `median ${s.median} ms, p99 ${s.p99} ms`,
      ...targetFor(s.name, s.p99),
    });
  }
  report.note(`${rounds} rounds asked of recovery.ts; p99 is the highest sample below 100 samples.`);
  if (code !== 0) report.note(`bench/recovery.ts exited with ${code}: its figures above may be incomplete`);
}
