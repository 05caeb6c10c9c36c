// `dockfw check FILE…`: label errors in compose files and docker inspect JSON, one line each.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import {
  decisionFor,
  parseContainerLabels,
  type ContainerPolicy,
  type LabelProblem,
} from '../labels/labels.js';
import { lookalikeLabels } from '../labels/lookalike.js';
import { composePublished, type PublishedRange } from './compose-ports.js';
import { parse, UsageError } from './args.js';
import { portOrigin } from './port-origin.js';
import { ascending } from '../order.js';

const HELP = `Usage: dockfw check FILE...

Checks the dockfw.* labels in compose files (YAML; services' labels as a map or a
list of KEY=VALUE) and in docker inspect JSON arrays (detected by content). Use -
to read standard input, e.g. \`docker compose config | dockfw check -\` (compose
variables are only expanded that way).

Prints one line per problem, FILE: service/container: label: message, and exits 1
if there is any; otherwise prints a short OK line and exits 0. A port label that
matches none of a compose service's published container ports is a warning (it
usually names the host port by mistake), and so is a published port of a labelled
service that no label covers (the default policy decides it); warnings do not
change the exit code.
`;

/** Labels of one service or container, named for messages. */
export interface LabelledThing {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Published container ports, when known. */
  readonly published?: readonly PublishedRange[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function scalarText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Compose `labels:` as a map, or a list of KEY=VALUE (a bare KEY has an empty value). */
export function composeLabels(labels: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  if (Array.isArray(labels)) {
    for (const entry of labels) {
      const text = scalarText(entry);
      const eq = text.indexOf('=');
      if (eq < 0) result[text] = '';
      else result[text.slice(0, eq)] = text.slice(eq + 1);
    }
  } else if (isRecord(labels)) {
    for (const [key, value] of Object.entries(labels)) result[key] = scalarText(value);
  }
  return result;
}

/** Where the text stops being YAML (or JSON, which YAML reads too), 1-based. */
export interface SyntaxProblem {
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

function parseDocument(text: string): { document: unknown } | { syntax: SyntaxProblem } {
  try {
    return { document: JSON.parse(text) };
  } catch {
    // Not JSON: YAML, whose errors carry a position (and it reads broken JSON's too).
  }
  try {
    return { document: parseYaml(text, { merge: true, maxAliasCount: 1000 }) };
  } catch (error) {
    const at = error instanceof YAMLParseError ? error.linePos?.[0] : undefined;
    const message = error instanceof Error ? error.message : String(error);
    // The message repeats the position and quotes the source on further lines.
    const reason = (message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    return { syntax: { line: at?.line ?? 1, col: at?.col ?? 1, message: reason } };
  }
}

/**
 * Services of a compose document, or containers of a docker inspect array;
 * undefined if the text is neither, a SyntaxProblem if it is not YAML at all.
 */
export function labelledThings(text: string): LabelledThing[] | SyntaxProblem | undefined {
  const parsed = parseDocument(text);
  if ('syntax' in parsed) return parsed.syntax;
  const { document } = parsed;
  if (Array.isArray(document)) {
    if (!document.every((c) => isRecord(c) && typeof c.Id === 'string')) return undefined;
    return document.map((c: Record<string, unknown>) => ({
      name: scalarText(c.Name).replace(/^\//, '') || scalarText(c.Id).slice(0, 12),
      labels: isRecord(c.Config) ? composeLabels(c.Config.Labels) : {},
    }));
  }
  // An override file may have no services; anything with compose's top-level keys counts.
  const composeKeys = ['services', 'networks', 'volumes', 'configs', 'secrets', 'include'];
  if (isRecord(document) && composeKeys.some((key) => key in document)) {
    const services = isRecord(document.services) ? document.services : {};
    return Object.entries(services).map(([name, service]) => {
      const published = isRecord(service) ? composePublished(service.ports) : undefined;
      return {
        name,
        labels: isRecord(service) ? composeLabels(service.labels) : {},
        ...(published === undefined ? {} : { published }),
      };
    });
  }
  return undefined;
}

/** Port labels that match no published container port: usually a host port by mistake. */
function unmatchedPortLabels(policy: ContainerPolicy, published: readonly PublishedRange[]): LabelProblem[] {
  const shown = published.map((p) => `${p.from === p.to ? p.from : `${p.from}-${p.to}`}/${p.protocol}`);
  return policy.ports
    .filter(
      ({ spec }) =>
        !published.some((p) => p.protocol === spec.protocol && p.from <= spec.to && spec.from <= p.to),
    )
    .map(({ label }) => ({
      label,
      message:
        `warning: the service publishes no such container port (${shown.join(', ') || 'none'});` +
        ' port labels name container ports, not host ports',
    }));
}

/**
 * Published ports of a labelled service that no label covers, as runs (`7000/tcp`,
 * `8000-8010/tcp`): the default policy decides them, which is easy to miss.
 */
export function defaultPolicyPorts(policy: ContainerPolicy, published: readonly PublishedRange[]): string[] {
  const seen = new Set<string>();
  const runs: { from: number; to: number; protocol: string }[] = [];
  const sorted = [...published].sort((a, b) => ascending(a.protocol, b.protocol) || a.from - b.from);
  for (const range of sorted) {
    for (let port = range.from; port <= range.to; port++) {
      const key = `${port}/${range.protocol}`;
      if (seen.has(key) || decisionFor(policy, port, range.protocol) !== undefined) continue;
      seen.add(key);
      const last = runs[runs.length - 1];
      if (last?.protocol === range.protocol && last.to + 1 === port) last.to = port;
      else runs.push({ from: port, to: port, protocol: range.protocol });
    }
  }
  return runs.map((r) => `${r.from === r.to ? r.from : `${r.from}-${r.to}`}/${r.protocol}`);
}

/**
 * Lines for one file's text, `FILE: name: label: message`. Problems make the check
 * fail; warnings (port labels matching no published port) do not.
 */
export function checkText(
  file: string,
  text: string,
): { lines: string[]; warnings: string[]; checked: number } {
  const things = labelledThings(text);
  if (!Array.isArray(things)) {
    const line =
      things === undefined
        ? `${file}: not a compose file or a docker inspect JSON array`
        : `${file}:${things.line}:${things.col}: not valid YAML or JSON: ${things.message}`;
    return { lines: [line], warnings: [], checked: 0 };
  }
  const lines: string[] = [];
  const warnings: string[] = [];
  for (const thing of things) {
    for (const lookalike of lookalikeLabels(thing.labels)) {
      warnings.push(`${file}: ${thing.name}: warning: ${lookalike.message}`);
    }
    const result = parseContainerLabels(thing.labels);
    if (result.kind === 'labeled' && thing.published !== undefined) {
      for (const warning of unmatchedPortLabels(result.policy, thing.published)) {
        warnings.push(`${file}: ${thing.name}: ${warning.label}: ${warning.message}`);
      }
      for (const ports of defaultPolicyPorts(result.policy, thing.published)) {
        warnings.push(
          `${file}: ${thing.name}: ${ports}: warning: decided by the ${portOrigin({ origin: 'default' })}` +
            ' (DOCKFW_DEFAULT_POLICY): no dockfw.allow label covers this published port',
        );
      }
    }
    if (result.kind !== 'invalid') continue;
    for (const problem of result.problems) {
      const hint = thing.labels[problem.label]?.includes('$')
        ? ' (compose variables are not expanded here; try docker compose config | dockfw check -)'
        : '';
      lines.push(`${file}: ${thing.name}: ${problem.label}: ${problem.message}${hint}`);
    }
  }
  return { lines, warnings, checked: things.length };
}

async function readInput(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function run(argv: string[]): Promise<number> {
  let files: string[];
  try {
    const parsed = parse(argv, { help: { type: 'boolean' } }, true);
    if (parsed.values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    files = parsed.positionals;
    if (files.length === 0) throw new UsageError('no files given');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`dockfw check: ${error.message}\n(see dockfw check --help)\n`);
    return 2;
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  let checked = 0;
  for (const file of files) {
    let text: string;
    try {
      text = await readInput(file);
    } catch (error) {
      problems.push(`${file}: cannot read: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const result = checkText(file === '-' ? '<stdin>' : file, text);
    problems.push(...result.lines);
    warnings.push(...result.warnings);
    checked += result.checked;
  }
  if (warnings.length > 0) process.stdout.write(`${warnings.join('\n')}\n`);
  if (problems.length > 0) {
    process.stdout.write(`${problems.join('\n')}\n`);
    return 1;
  }
  const note = warnings.length > 0 ? ` (${warnings.length} warning(s))` : '';
  process.stdout.write(
    `OK: ${checked} services/containers in ${files.length} file(s), no label problems${note}\n`,
  );
  return 0;
}
