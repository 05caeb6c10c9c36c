/**
 * `npm run bench [-- --quick] [-- --only=sync,engine,recovery,packet,memory]`:
 * every benchmark figure with its target beside it, printed as measured and
 * written to bench/RESULTS.md with the machine it ran on. Figures only: a
 * missed target is reported, never a failure (the tests check correctness).
 */
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BUILD_DIR, cleanupAll } from './lib.js';
import { Report } from './report.js';
import { engineBench } from './engine-bench.js';
import { memoryBench } from './memory-bench.js';
import { packetBench } from './packet-bench.js';
import { recoveryBench } from './recovery-bench.js';
import { syncBench } from './sync-bench.js';

const REPO = path.resolve(BUILD_DIR, '..', '..', '..');

async function version(file: string, args: string[]): Promise<string> {
  const result = await execa(file, args, { reject: false });
  return (result.stdout || result.stderr).split('\n')[0]?.trim() ?? 'unknown';
}

async function machine(): Promise<string[]> {
  return [
    `- cores (nproc): ${os.availableParallelism()}`,
    `- memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `- kernel: ${os.release()}`,
    `- node: ${process.version}`,
    `- iptables: ${await version('iptables-nft', ['--version'])}; ${await version('iptables-legacy', ['--version'])}`,
    `- nft: ${await version('nft', ['--version'])}`,
  ];
}

type Part = 'sync' | 'engine' | 'recovery' | 'packet' | 'memory';
const PARTS: readonly Part[] = ['sync', 'engine', 'recovery', 'packet', 'memory'];

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: run as root (network namespaces, a test engine)\n');
    return 2;
  }
  const quick = process.argv.includes('--quick');
  const only = process.argv
    .find((a) => a.startsWith('--only='))
    ?.slice('--only='.length)
    .split(',') as Part[] | undefined;
  const parts = only ?? PARTS;
  // --sizes=5000 (a development aid): the sync part at these sizes only; a partial run.
  const sizes = process.argv
    .find((a) => a.startsWith('--sizes='))
    ?.slice('--sizes='.length)
    .split(',')
    .map(Number);
  const started = Date.now();
  const report = new Report();
  const tmpDir = await mkdtemp('/tmp/dfw-bench-');
  const stop = (): void => {
    void cleanupAll()
      .then(() => rm(tmpDir, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const info = await machine();
  process.stdout.write(`dockfw benchmarks${quick ? ' (--quick)' : ''}\n${info.join('\n')}\n`);
  try {
    if (parts.includes('sync')) {
      await syncBench(report, {
        sizes: sizes ?? (quick ? [100, 1000] : [100, 1000, 5000, 20000]),
        repeats: 3,
        repeatsLargest: 1,
        startsAt: quick ? 1000 : 5000,
        naiveSample: quick ? 50 : 200,
        starts: quick
          ? { nftables: 10, 'iptables-legacy': 3, 'iptables-nft': 3 }
          : { nftables: 20, 'iptables-legacy': 20, 'iptables-nft': 20 },
        tmpDir,
      });
    }
    if (parts.includes('engine')) {
      await engineBench(report, {
        starts: quick ? 10 : 50,
        backends: quick ? ['auto'] : ['auto', 'nftables'],
      });
    }
    if (parts.includes('recovery')) await recoveryBench(report, quick ? 5 : 20);
    if (parts.includes('packet')) {
      await packetBench(report, { others: 1000, rounds: quick ? 1 : 7, seconds: quick ? 2 : 3 });
    }
    if (parts.includes('memory'))
      await memoryBench(report, { count: quick ? 1000 : 5000, tmpDir, heapCaps: [64, 128] });
  } finally {
    await cleanupAll();
    await rm(tmpDir, { recursive: true, force: true });
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  const text = [
    '# dockfw benchmark results',
    '',
    `Written by \`npm run bench${quick ? ' -- --quick' : ''}\` (as root, ${new Date().toISOString()}, ${minutes} min). Read bench/README.md for what each figure measures.`,
    '',
    '## Machine',
    '',
    ...info,
    '',
    report.markdown(),
  ].join('\n');
  // A partial run (--only, --quick) must not replace the full results.
  const file =
    only === undefined && !quick && sizes === undefined
      ? path.join(REPO, 'bench', 'RESULTS.md')
      : path.join(REPO, '.cache', 'bench-partial.md');
  await writeFile(file, text);
  process.stdout.write(`\nwritten to ${path.relative(REPO, file)} (${minutes} min)\n`);
  return 0;
}

process.exitCode = await main();
