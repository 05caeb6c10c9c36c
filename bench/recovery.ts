/**
 * How fast dockfw heals, on a real engine (run as root after scripts/provision.sh
 * and `npm run build`; see bench/recovery.sh):
 *
 * - repair after an outside flush of DOCKER-USER, from the flush to dockfw's
 *   "drift found" log line: with the ruleset watch (`nft monitor`, no periodic
 *   check during the run) and with the periodic check only (`DOCKFW_RESYNC`
 *   every 2 s, the watch off), on Docker 28.5.2 with iptables-nft;
 * - engine restart: from the restart until every container's rules name its
 *   current address again, and until the allowed client gets an answer.
 *
 * Prints median and p99 (the highest sample when there are fewer than 100).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { stopDockerd } from '../test/host/engine.js';
import { startTestHost, TEST_IMAGE, type TestHost } from '../test/host/index.js';
import { readPidFile } from '../test/host/processes.js';
import { DockfwProcess } from '../test/e2e/dockfw-process.js';
import { waitUntilReached } from '../test/e2e/healing-tools.js';
import { iptablesFirewall } from '../test/e2e/suite-firewall.js';

const HOST_A = '203.0.113.1';
const ALLOWED = '203.0.113.10';
const DRIFT = 'drift found: re-applied the rules';
const CONTAINERS = 5;
/** How the e2e suites read dockfw's iptables rules and sets (one reading, not a second one here). */
const FIREWALL = iptablesFirewall(true);

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

function summary(name: string, samples: number[]): string {
  return `${name}: median ${quantile(samples, 0.5).toFixed(0)} ms, p99 ${quantile(samples, 0.99).toFixed(0)} ms, max ${Math.max(...samples).toFixed(0)} ms (n=${samples.length})`;
}

/** ms from an outside flush of DOCKER-USER to dockfw's drift log line, `rounds` times. */
async function repairTimes(host: TestHost, env: Record<string, string>, rounds: number): Promise<number[]> {
  const dockfw = DockfwProcess.start(host, { DOCKFW_LOG_LEVEL: 'info', ...env });
  try {
    await dockfw.waitForLog('connected to docker');
    await waitUntilReached(host, { from: ALLOWED, to: HOST_A, port: 8200 });
    const times: number[] = [];
    const by = new Set<string>();
    for (let i = 0; i < rounds; i++) {
      // Not in step with a periodic check: start anywhere within its period.
      await sleep(300 + Math.random() * 2000);
      const seen = dockfw.logged(DRIFT).length;
      const flushedAt = Date.now();
      await host.flushChain('DOCKER-USER', [4]);
      const drift = await dockfw.waitForLog(DRIFT, 10_000, seen + 1);
      times.push(Number(drift.time) - flushedAt);
      by.add(JSON.stringify(drift.reasons));
    }
    console.log(`  (repairs asked for by: ${[...by].join(' ')})`);
    return times;
  } finally {
    await dockfw.stop();
  }
}

/** dockfw lets ALLOWED reach every container's current address on port 80 (an element of its sets). */
async function rulesCorrect(host: TestHost, names: string[]): Promise<boolean> {
  const { v4 } = await FIREWALL.owned(host);
  const addresses = await Promise.all(names.map((n) => host.containerAddresses(n)));
  return addresses.every(({ v4: [a] }) => a !== undefined && FIREWALL.allows(v4, a, 80, ALLOWED));
}

/**
 * ms from starting a stopped engine to every rule correct, and to the allowed
 * client answered (stopping it takes seconds of its own: containers get 10 s to stop).
 */
async function engineRestartTimes(host: TestHost, names: string[], rounds: number) {
  const dockfw = DockfwProcess.start(host, { DOCKFW_LOG_LEVEL: 'info' });
  const rules: number[] = [];
  const answered: number[] = [];
  try {
    await dockfw.waitForLog('connected to docker');
    for (let i = 0; i < rounds; i++) {
      while (!(await rulesCorrect(host, names))) await sleep(50);
      await stopDockerd(host.layout, readPidFile(host.layout.dockerPidFile));
      const started = Date.now();
      await host.restartEngine();
      // Until the containers are back with (possibly) new addresses and rules follow them.
      for (;;) {
        const running = await host.docker(['ps', '-q'], { reject: false });
        if (running.stdout.split('\n').filter((l) => l !== '').length >= names.length) {
          if (await rulesCorrect(host, names).catch(() => false)) break;
        }
        await sleep(20);
      }
      rules.push(Date.now() - started);
      await waitUntilReached(host, { from: ALLOWED, to: HOST_A, port: 8200 }, 60_000);
      answered.push(Date.now() - started);
    }
  } finally {
    await dockfw.stop();
  }
  return { rules, answered };
}

async function main(): Promise<void> {
  const rounds = Number(process.env.ROUNDS ?? 20);
  const host = await startTestHost({ engine: '28.5', iptables: 'nft', ipv6: true });
  // Stopped half-way (Ctrl-C, or npm run bench's own cleanup, often both), the
  // engine and dockfw still go down with it: nothing else tracks them.
  let cleaning: Promise<void> | undefined;
  const cleanUp = (): Promise<void> => (cleaning ??= DockfwProcess.stopAll().finally(() => host.stop()));
  const interrupted = (): void => {
    void cleanUp().finally(() => process.exit(130));
  };
  process.on('SIGINT', interrupted);
  process.on('SIGTERM', interrupted);
  try {
    const names = Array.from({ length: CONTAINERS }, (_, i) => `bench${i}`);
    for (const [i, name] of names.entries()) {
      await host.docker([
        'run',
        '-d',
        '--restart',
        'always',
        '--name',
        name,
        '-p',
        `${8200 + i}:80`,
        '-l',
        `dockfw.allow=${ALLOWED}`,
        TEST_IMAGE,
      ]);
    }
    const watched = await repairTimes(host, { DOCKFW_RESYNC: '0 0 * * * *' }, rounds);
    console.log(summary('repair after DOCKER-USER flush, ruleset watch', watched));
    const periodic = await repairTimes(
      host,
      { DOCKFW_RESYNC: '*/2 * * * * *', DOCKFW_RULESET_WATCH: 'off' },
      Math.max(5, Math.round(rounds / 2)),
    );
    console.log(summary('repair after DOCKER-USER flush, periodic check every 2 s only', periodic));
    const restart = await engineRestartTimes(host, names, Math.max(3, Math.round(rounds / 5)));
    console.log(summary(`engine start → rules correct for ${CONTAINERS} containers`, restart.rules));
    console.log(summary('engine start → allowed client answered', restart.answered));
  } finally {
    await cleanUp();
  }
}

await main();
