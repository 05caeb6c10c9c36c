// The full soak run: 1,000 create/start/stop/remove cycles of labelled
// containers on a test host's real engine, one dockfw running throughout (built
// from dist/: run `npm run build` first). As root, after scripts/provision.sh:
//   scripts/soak.sh [CYCLES] [BATCH]
// Prints RSS and open fds after every batch, and fails (exit 1) on a missed
// container, rules not back to the baseline, or growth.
import { startTestHost } from '../test/host/index.js';
import { DockfwProcess } from '../test/e2e/dockfw-process.js';
import { runSoak, summarize } from '../test/e2e/soak-cycles.js';

const cycles = Number(process.argv[2] ?? 1000);
const batch = Number(process.argv[3] ?? 10);
if (!(cycles > 0 && batch > 0)) {
  console.error('usage: soak [CYCLES] [BATCH]');
  process.exit(2);
}

const host = await startTestHost({ engine: '28.5', iptables: 'nft' });
let failed = false;
try {
  const dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: 'iptables' });
  await dockfw.waitForLog('rules applied');
  const started = Date.now();
  const result = await runSoak(host, dockfw, {
    cycles,
    batch,
    onBatch: (s, r) =>
      console.log(
        `${new Date().toISOString()} cycles ${s.cycles}: VmRSS ${s.rssKb} kB, fds ${s.fds}, slowest match ${r.slowestMatchMs} ms`,
      ),
  });
  console.log(`soak ${summarize(result.samples)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const errors = dockfw.records.filter((r) => r.level >= 50);
  const warm = result.samples[1];
  const last = result.samples[result.samples.length - 1];
  const problems = [
    ...(JSON.stringify(result.final) === JSON.stringify(result.baseline)
      ? []
      : ['rules not back to the baseline']),
    ...(errors.length === 0 ? [] : [`${errors.length} error lines`]),
    ...(warm !== undefined && last !== undefined && last.fds > warm.fds + 2 ? ['open fds grew'] : []),
    ...(warm !== undefined && last !== undefined && last.rssKb > warm.rssKb * 1.25 + 8 * 1024
      ? ['RSS grew']
      : []),
  ];
  if (problems.length > 0) {
    failed = true;
    console.error(`FAILED: ${problems.join('; ')}\n${dockfw.output()}`);
  } else console.log('passed');
  await dockfw.stop();
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await DockfwProcess.stopAll();
  await host.stop();
}
process.exit(failed ? 1 : 0);
