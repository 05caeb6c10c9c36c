/**
 * The soak run in reduced form (40 create/start/stop/remove cycles, batches of
 * 10) on a real engine with one dockfw throughout. The full 1,000 cycles:
 * `scripts/soak.sh` as root (see scripts/soak.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHost, type TestHost } from '../host/index.js';
import { DockfwProcess } from './dockfw-process.js';
import { runSoak, summarize } from './soak-cycles.js';

const CYCLES = Number(process.env.DOCKFW_SOAK_CYCLES ?? 40);

describe('soak: containers come and go, dockfw keeps up without growing', () => {
  let host: TestHost;
  let dockfw: DockfwProcess;

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft' });
    dockfw = DockfwProcess.start(host, { DOCKFW_BACKEND: 'iptables' });
    await dockfw.waitForLog('rules applied');
  });

  afterAll(async () => {
    await DockfwProcess.stopAll();
    await host?.stop();
  });

  it(`${CYCLES} cycles: no missed container, rules back to the baseline, no growth`, async () => {
    const result = await runSoak(host, dockfw, { cycles: CYCLES, batch: 10 });
    console.log(`soak ${summarize(result.samples)}; slowest match ${result.slowestMatchMs} ms`);
    expect(result.final).toEqual(result.baseline);
    const warm = result.samples[1];
    const last = result.samples[result.samples.length - 1];
    if (warm === undefined || last === undefined) throw new Error('no samples');
    // Handles: back to what the first batch left (the event stream, the listener, …).
    expect(last.fds).toBeLessThanOrEqual(warm.fds + 2);
    // Memory: 40 cycles are too few for the garbage collector to settle (a run
    // reached 1.2x the first batch's RSS here, while 1,000 cycles end where
    // they began), so this only catches gross growth; scripts/soak.sh is the
    // real measure.
    expect(last.rssKb).toBeLessThan(warm.rssKb * 1.5);
    expect(dockfw.records.filter((r) => r.level >= 50)).toEqual([]);
  });
});
