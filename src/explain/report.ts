// An explanation with the kernel's answer for each judgement, as text for
// people and JSON for scripts (pure).
import type { DesiredState } from '../policy/desired.js';
import type { Explanation, PacketPath } from './decide.js';
import {
  checkJudgement,
  overallStatus,
  type KernelCheck,
  type KernelStatus,
  type KernelView,
} from '../backends/create.js';

export interface KernelSummary {
  /** The backend read, or undefined when the kernel was not read. */
  readonly backend?: 'iptables' | 'nftables';
  readonly status: KernelStatus;
  /** Why the kernel was not read (offline, a tool failed, …). */
  readonly reason?: string;
}

export interface Report {
  readonly explanation: Explanation;
  readonly kernel: KernelSummary;
  /** Per path, per judgement. */
  readonly checks: readonly (readonly KernelCheck[])[];
}

/** Checks every judgement of every path against the kernel view (undefined: not read, `reason` says why). */
export function buildReport(
  desired: DesiredState,
  explanation: Explanation,
  view: KernelView | undefined,
  reason?: string,
): Report {
  const checks = explanation.paths.map((path) =>
    path.judgements.map((j) => {
      const check = checkJudgement(desired, j, view, explanation.source.value);
      return view === undefined && reason !== undefined ? { ...check, note: reason } : check;
    }),
  );
  const status = view === undefined ? 'not-checked' : overallStatus(checks.flat());
  return {
    explanation,
    kernel: {
      ...(view === undefined ? {} : { backend: view.backend }),
      status,
      ...(view === undefined ? { reason: reason ?? 'offline' } : {}),
    },
    checks,
  };
}

/** Exit status for scripts: 0 allowed, 1 denied, 3 unknown target. */
export function exitCode(report: Report): number {
  switch (report.explanation.verdict) {
    case 'allowed':
      return 0;
    case 'denied':
      return 1;
    case 'unknown':
      return 3;
  }
}

function kernelLine(check: KernelCheck): string {
  switch (check.status) {
    case 'holds':
      return 'kernel: holds the rule';
    case 'missing':
      return 'kernel: missing';
    case 'not-needed':
      return 'kernel: nothing to hold';
    case 'not-checked':
      return `kernel: not checked (${check.note ?? 'offline'})`;
  }
}

function pathLines(path: PacketPath, checks: readonly KernelCheck[], offline: boolean): string[] {
  const lines = [
    `path: ${path.description}`,
    `  container: ${path.container.name} (${path.container.id.slice(0, 12)}), ${path.container.state}`,
    `  decided by: ${path.decidedBy.text} (allow ${path.decidedBy.allow})`,
    ...path.problems.map((p) => `    invalid: ${p}`),
  ];
  if (path.judgements.length === 0) lines.push('  judged: nowhere (dockfw has no rule for this path)');
  path.judgements.forEach((j, i) => {
    const check = checks[i];
    const how =
      j.verdict === 'allowed'
        ? j.matched === undefined || j.matched === 'any'
          ? 'allowed (any source)'
          : `allowed (source in ${j.matched})`
        : 'denied (source not allowed)';
    lines.push(`  ${j.where}: ${how}`);
    // Offline, the one kernel line at the end says so.
    if (check === undefined || offline) return;
    lines.push(`    ${kernelLine(check)}`);
    if (check.status === 'not-needed' && check.note !== undefined) lines.push(`      ${check.note}`);
    if (check.status === 'holds') lines.push(...check.expected.map((e) => `      ${e}`));
    if (check.status === 'missing') {
      lines.push(...check.missing.map((e) => `      missing: ${e}`));
      if (check.note !== undefined) lines.push(`      ${check.note}`);
    }
  });
  lines.push(`  verdict: ${path.verdict}`);
  lines.push(...path.notes.map((n) => `  note: ${n}`));
  return lines;
}

export function renderText(report: Report): string {
  const e = report.explanation;
  const head = `${e.source.text} → ${e.target}: ${e.verdict === 'unknown' ? 'unknown target' : e.verdict}`;
  const lines = [head];
  if (e.reason !== undefined) lines.push(`  ${e.reason}`);
  e.paths.forEach((path, i) =>
    lines.push(...pathLines(path, report.checks[i] ?? [], report.kernel.backend === undefined)),
  );
  if (e.paths.length > 0) {
    const k = report.kernel;
    const overall =
      k.status === 'not-checked'
        ? `kernel: not checked (${k.reason ?? 'offline'})`
        : `${kernelLine({ status: k.status, expected: [], missing: [] })} (${k.backend ?? ''})`;
    lines.push(overall);
  }
  lines.push(...e.notes.map((n) => `note: ${n}`));
  return `${lines.join('\n')}\n`;
}

/** The report as plain JSON data (no bigints, no internal references). */
export function toJson(report: Report): unknown {
  const e = report.explanation;
  return {
    source: e.source.text,
    target: e.target,
    protocol: e.protocol,
    verdict: e.verdict,
    ...(e.reason === undefined ? {} : { reason: e.reason }),
    kernel: report.kernel,
    paths: e.paths.map((p, i) => ({
      kind: p.kind,
      family: p.family,
      description: p.description,
      ...(p.kind === 'direct' ? {} : { hostAddress: p.hostAddress ?? (p.family === 4 ? '0.0.0.0' : '::') }),
      ...(p.hostPort === undefined ? {} : { hostPort: p.hostPort }),
      container: p.container,
      ...(p.containerAddress === undefined ? {} : { containerAddress: p.containerAddress }),
      containerPort: p.containerPort,
      protocol: p.protocol,
      decidedBy: p.decidedBy,
      problems: p.problems,
      verdict: p.verdict,
      judgements: p.judgements.map((j, k) => ({
        stage: j.stage,
        where: j.where,
        verdict: j.verdict,
        ...(j.matched === undefined ? {} : { matched: j.matched }),
        kernel: report.checks[i]?.[k],
      })),
      notes: p.notes,
    })),
    notes: e.notes,
  };
}
