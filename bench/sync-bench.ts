/**
 * Figures 1, 2 and 8: full sync at scale, the periodic check with nothing
 * changed, and one change at scale, per backend, each in a fresh namespace
 * with Docker's chains made by hand and the stand-in engine serving the
 * containers. The sync itself runs in bench/sync-worker.ts inside the namespace.
 */
import path from 'node:path';
import {
  addDockerChains,
  createNetns,
  deleteNetns,
  median,
  ms,
  quantile,
  runInNs,
  startStandin,
  type Variant,
} from './lib.js';
import type { Report } from './report.js';
import type { PhaseSample, SyncResult, SyncSpec } from './sync-worker.js';

export interface Flavour {
  readonly label: string;
  readonly backend: 'iptables' | 'nftables';
  readonly variant: Variant;
}

export const FLAVOURS: readonly Flavour[] = [
  { label: 'iptables-nft', backend: 'iptables', variant: 'nft' },
  { label: 'iptables-legacy', backend: 'iptables', variant: 'legacy' },
  { label: 'nftables', backend: 'nftables', variant: 'nft' },
];

export interface SyncBenchOptions {
  readonly sizes: readonly number[];
  readonly repeats: number;
  /** Repeats at the largest size (a full iptables-nft sync of 5,000 takes seconds). */
  readonly repeatsLargest: number;
  readonly naiveSample: number;
  /** Starts at the largest size, per backend. */
  readonly starts: Readonly<Record<string, number>>;
  readonly tmpDir: string;
}

async function measure(
  flavour: Flavour,
  count: number,
  options: SyncBenchOptions,
  starts: number,
): Promise<SyncResult> {
  const ns = await createNetns(flavour.label.slice(0, 8));
  const socket = path.join(options.tmpDir, `engine-${flavour.label}-${count}.sock`);
  const standin = await startStandin(socket, count);
  try {
    await addDockerChains(ns, flavour.variant);
    const spec: SyncSpec = {
      socket,
      backend: flavour.backend,
      variant: flavour.variant,
      count,
      repeats: count === Math.max(...options.sizes) ? options.repeatsLargest : options.repeats,
      naiveSample: count === Math.max(...options.sizes) ? options.naiveSample : 0,
      starts,
    };
    return await runInNs<SyncResult>(ns, 'sync-worker.js', [JSON.stringify(spec)]);
  } finally {
    await standin.stop();
    await deleteNetns(ns);
  }
}

const FLOOR_MISSED = `Why: besides the one kernel write, every sync lists and inspects every container
over the Engine API (5,000 HTTP requests, 8 at a time, each answer parsed and validated),
derives the desired state, renders the whole payload, reads the kernel's ruleset back and
compares it, all on one Node thread. The "apply", "kernel reads" and "list + inspect"
figures above show where the time goes. Where the write itself is slow (iptables-nft) the
ratio is lowest; where it is fast (iptables-legacy) this fixed cost dominates.
What would meet it: keep the parsed inspect of each container and re-inspect only the
containers named by events since the last sync (the periodic check still re-lists all);
derive and render per container and reuse the unchanged parts; skip the full read-back when
the last write succeeded and the ruleset watch saw no foreign change.`;

const APPLY_MISSED = `Why: the write is already only what changed (one container's elements, about 1 kB,
one \`nft -f\` batch). Its time is a new nft process (exec, library start-up, netlink) plus
nft loading its cache of the table before it sends the batch, which grows with the
table: compare the naive figure above, one \`nft add element\` into a separate small
table, with the apply here into the table holding 115,000 elements.
What would meet it: not starting nft per write (a long-running helper holding libnftables,
or netlink directly) and not loading the whole table's cache for an element add, so only
the batch itself is paid (an earlier measurement of one element add at this size, on a
quieter machine: 7 ms).`;

const START_MISSED = `Why: the event's sync reads the container cache, so it inspects only the started
container (one Engine API request) and plans only that container again; but the nftables
reconciler still derives the canonical text of the whole table (115,000 elements) and reads
the whole table back (\`nft -j list\`, seconds at this size) before the 1 kB write. The
runner's rate limit does not matter here (the bench waits between starts).
What would meet it: in the backend, derive and compare per container (the desired state's
unchanged containers keep their objects) and leave the full read-back to the periodic check
and the ruleset watch (which already catch any drift).`;

const kb = (bytes: number): string =>
  bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;

function writesText(samples: readonly PhaseSample[]): string {
  const tools = new Map<string, number[]>();
  for (const s of samples)
    for (const [tool, n] of Object.entries(s.writesBy)) tools.set(tool, [...(tools.get(tool) ?? []), n]);
  const parts = [...tools].map(([tool, ns]) => `${Math.max(...ns)}× ${tool}`);
  return parts.length === 0 ? '0' : parts.join(' + ');
}

export async function syncBench(report: Report, options: SyncBenchOptions): Promise<void> {
  const largest = Math.max(...options.sizes);
  for (const flavour of FLAVOURS) {
    report.section(`Full sync, periodic check — ${flavour.label}`);
    for (const count of options.sizes) {
      const starts = count === largest ? (options.starts[flavour.label] ?? 0) : 0;
      const r = await measure(flavour, count, options, starts);
      const full = median(r.full.map((s) => s.ms));
      const floor = median(r.floorMs);
      const ratio = full / floor;
      const maxWrites = Math.max(...r.full.map((s) => s.writes));
      // One table (nftables: inet, both families) or one family (iptables: only IPv4 was removed) to write.
      const perFamily = 1;
      report.figure({
        name: `${count} containers (${r.rules} rules/elements): full sync, median of ${r.full.length}`,
        value: `${ms(full)} (apply ${ms(median(r.full.map((s) => s.applyMs)))}, kernel reads ${ms(median(r.full.map((s) => s.readMs)))}, list + inspect ${ms(median(r.full.map((s) => s.dockerMs)))}; the rest is dockfw's own work)`,
        target: '',
      });
      report.figure({
        name: `${count}: the same payload alone (floor), median`,
        value: `${ms(floor)} → full sync / floor = ${ratio.toFixed(2)}`,
        target: count === largest ? 'within 1.5x at the largest size' : '',
        ...(count === largest ? { met: ratio <= 1.5, ifMissed: FLOOR_MISSED } : {}),
      });
      report.figure({
        name: `${count}: kernel transactions per sync (writes)`,
        value: `${writesText(r.full)}; payload ${kb(median(r.full.map((s) => s.payloadBytes)))}; first sync: ${writesText([r.first])} in ${ms(r.first.ms)}`,
        target: 'one per family',
        met: maxWrites <= perFamily && Object.values(r.first.writesBy).every((n) => n <= 1),
      });
      const checkWrites = Math.max(...r.check.map((s) => s.writes));
      report.figure({
        name: `${count}: periodic check, nothing changed, median of ${r.check.length}`,
        value: `${ms(median(r.check.map((s) => s.ms)))} (kernel reads ${ms(median(r.check.map((s) => s.readMs)))} in ${r.check[0]?.reads ?? 0} commands, list + inspect ${ms(median(r.check.map((s) => s.dockerMs)))}), ${checkWrites} kernel writes`,
        target: 'zero kernel writes',
        met: checkWrites === 0,
      });
      if (r.naive) {
        const what =
          flavour.backend === 'nftables'
            ? '`nft add element` per element'
            : `\`iptables-${flavour.variant}\` per rule`;
        report.figure({
          name: `${count}: naive, one ${what} (sampled ${r.naive.sampled}, extrapolated to ${r.rules})`,
          value: `${ms(r.naive.perRuleMs)} each → ${r.naive.extrapolatedS.toFixed(0)} s for the whole set (${((r.naive.extrapolatedS * 1000) / full).toFixed(0)}x the full sync)`,
          target: '',
        });
      }
      if (r.starts.length > 0) {
        const apply = r.starts.map((s) => s.applyMs);
        const toEnforced = r.starts.map((s) => s.startToEnforcedMs);
        const nft = flavour.backend === 'nftables';
        report.figure({
          name: `one container started among ${count}: kernel apply (n=${r.starts.length}), median / p99`,
          value: `${ms(median(apply))} / ${ms(quantile(apply, 0.99))}, payload ${kb(median(r.starts.map((s) => s.payloadBytes)))}`,
          target: nft ? 'under 20 ms' : '',
          ...(nft ? { met: quantile(apply, 0.99) < 20, ifMissed: APPLY_MISSED } : {}),
        });
        report.figure({
          name: `one container started among ${count}: start event → enforced, median / p99`,
          value: `${ms(median(toEnforced))} / ${ms(quantile(toEnforced, 0.99))}`,
          target: nft ? 'p99 under 100 ms' : '',
          ...(nft ? { met: quantile(toEnforced, 0.99) < 100, ifMissed: START_MISSED } : {}),
        });
      }
    }
  }
}
