// The Grafana dashboard queries only what the daemon exports: every PromQL
// expression in packaging/grafana-dashboard.json is tokenised, and each metric
// name it names must be one the real DaemonMetrics registry has.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { memoryLogger } from '../../src/observe/memory-logger.js';
import { DaemonMetrics } from '../../src/observe/metrics.js';
import { DaemonState } from '../../src/observe/state.js';

const dashboard = JSON.parse(
  readFileSync(new URL('../../packaging/grafana-dashboard.json', import.meta.url), 'utf8'),
) as { panels: { title: string; targets?: { expr: string }[] }[] };

const FUNCTIONS = new Set([
  'rate',
  'increase',
  'sum',
  'max',
  'min',
  'avg',
  'topk',
  'histogram_quantile',
  'time',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'label_values',
]);

/** Metric names in one PromQL expression: identifiers outside strings, braces and ranges that are not functions or keywords. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(?:by|without|on|ignoring)\s*\([^)]*\)/g, '');
  const names = stripped.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? [];
  return names.filter((n) => !FUNCTIONS.has(n) && !/^\d/.test(n));
}

/** Names a scrape shows: histograms add _bucket, _sum and _count. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = new DaemonMetrics({
    state: new DaemonState({ version: 'test', defaultPolicy: 'allow' }),
    version: 'test',
    logger: memoryLogger().logger,
    readCounters: () => Promise.reject(new Error('no kernel here')),
  });
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram')
      for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
  }
  return names;
}

describe('packaging/grafana-dashboard.json', () => {
  const exprs = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
  );

  it('has the panels the issue asks for', () => {
    const all = exprs.map((e) => e.expr).join('\n');
    for (const name of [
      'dockfw_syncs_total',
      'dockfw_ready',
      'dockfw_drift_repairs_total',
      'dockfw_dropped_packets_total',
      'dockfw_top_dropped_source_packets',
    ])
      expect(all).toContain(name);
  });

  it('queries only metrics the daemon exports', async () => {
    const exported = await exportedNames();
    expect(exported.size).toBeGreaterThan(10);
    for (const { panel, expr } of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${panel}: ${name} in ${expr}`).toContain(name);
    }
  });

  it('finds metric names the way PromQL reads them', () => {
    expect(metricNames('sum by (container) (rate(dockfw_x_total{a="b,c"}[5m])) * 60')).toEqual([
      'dockfw_x_total',
    ]);
    expect(metricNames('time() - max by (instance) (a_b)')).toEqual(['a_b']);
  });
});
