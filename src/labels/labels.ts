// A container's dockfw.* labels → its policy, or the list of what is wrong.
import type { Protocol } from '../net/family.js';
import { parseSources, quote, type SourceSet } from './sources.js';
import { ascending } from '../order.js';

export const LABEL_PREFIX = 'dockfw.';
export const ALLOW_LABEL = 'dockfw.allow';

export interface PortSpec {
  readonly from: number;
  readonly to: number;
  readonly protocol: Protocol;
}

export interface PortPolicy {
  readonly label: string;
  readonly spec: PortSpec;
  readonly sources: SourceSet;
}

export interface ContainerPolicy {
  /** `dockfw.allow`: every published port without a port label of its own. */
  readonly all?: SourceSet;
  /** `dockfw.allow.<ports>[/<proto>]`, sorted by protocol then port. */
  readonly ports: readonly PortPolicy[];
}

export interface LabelProblem {
  readonly label: string;
  readonly message: string;
}

export type LabelsResult =
  | { readonly kind: 'unlabeled' }
  | { readonly kind: 'labeled'; readonly policy: ContainerPolicy }
  | { readonly kind: 'invalid'; readonly problems: readonly LabelProblem[] };

const PORT_KEY = /^(0|[1-9][0-9]{0,4})(?:-(0|[1-9][0-9]{0,4}))?(?:\/(tcp|udp|sctp))?$/;
const PRINTABLE_KEY = /^[\x21-\x7e]{1,200}$/;

/** The label key as it may appear in a message: itself if plain, else quoted. */
export function displayKey(key: string): string {
  return PRINTABLE_KEY.test(key) ? key : quote(key);
}

export function parsePortSpec(text: string): { ok: true; value: PortSpec } | { ok: false; message: string } {
  const match = PORT_KEY.exec(text);
  if (match === null) {
    return {
      ok: false,
      message: 'unknown label; expected dockfw.allow or dockfw.allow.<port>[-<port>][/tcp|udp|sctp]',
    };
  }
  const from = Number(match[1]);
  const to = match[2] === undefined ? from : Number(match[2]);
  const protocol = (match[3] ?? 'tcp') as Protocol;
  if (from < 1 || from > 65535 || to < 1 || to > 65535)
    return { ok: false, message: 'ports must be 1-65535' };
  if (from > to) return { ok: false, message: 'port range start is after its end' };
  return { ok: true, value: { from, to, protocol } };
}

function compareSpecs(a: PortSpec, b: PortSpec): number {
  return ascending(a.protocol, b.protocol) || a.from - b.from || a.to - b.to;
}

/**
 * Parsed source lists by label value, the most recently used last. Hosts repeat
 * their allow lists (one office range on many services), and containers with
 * equal values then share one parsed list: its intervals, and the element texts
 * the backends spell once per list. Bounded in count and in value length, so a
 * flood of distinct values costs a bounded memo; results are immutable.
 */
const SHARED_VALUES = 4096;
const SHARED_VALUE_LENGTH = 1024;
const sharedSources = new Map<string, ReturnType<typeof parseSources>>();

function sourcesOf(value: string): ReturnType<typeof parseSources> {
  if (value.length > SHARED_VALUE_LENGTH) return parseSources(value);
  const known = sharedSources.get(value);
  if (known !== undefined) {
    sharedSources.delete(value);
    sharedSources.set(value, known);
    return known;
  }
  const parsed = parseSources(value);
  sharedSources.set(value, parsed);
  if (sharedSources.size > SHARED_VALUES) {
    const oldest = sharedSources.keys().next();
    if (oldest.done !== true) sharedSources.delete(oldest.value);
  }
  return parsed;
}

export function parseContainerLabels(labels: Readonly<Record<string, string>>): LabelsResult {
  const keys = Object.keys(labels)
    .filter((key) => key.startsWith(LABEL_PREFIX))
    .sort();
  if (keys.length === 0) return { kind: 'unlabeled' };
  const problems: LabelProblem[] = [];
  let all: SourceSet | undefined;
  const ports: PortPolicy[] = [];
  for (const key of keys) {
    const value = labels[key] ?? '';
    const label = displayKey(key);
    let spec: PortSpec | undefined;
    if (key !== ALLOW_LABEL) {
      const portText = key.startsWith(`${ALLOW_LABEL}.`) ? key.slice(ALLOW_LABEL.length + 1) : undefined;
      const parsedSpec = portText === undefined ? undefined : parsePortSpec(portText);
      if (parsedSpec === undefined || !parsedSpec.ok) {
        // `dockfw.allow ` from a YAML or shell slip: say what is wrong with the key.
        const spaced = key.trim() !== key ? ' (spaces around the key: keys are compared exactly)' : '';
        problems.push({
          label,
          message:
            (parsedSpec?.message ?? 'unknown label; dockfw knows dockfw.allow and dockfw.allow.<port>') +
            spaced,
        });
        continue;
      }
      spec = parsedSpec.value;
    }
    const sources = sourcesOf(value);
    if (!sources.ok) {
      problems.push({ label, message: sources.message });
      continue;
    }
    if (spec === undefined) all = sources.value;
    else ports.push({ label, spec, sources: sources.value });
  }
  ports.sort((a, b) => compareSpecs(a.spec, b.spec));
  // Sorted by start: a spec overlaps an earlier one iff it starts before the furthest end so far.
  let furthest: PortPolicy | undefined;
  for (const current of ports) {
    if (furthest?.spec.protocol === current.spec.protocol && current.spec.from <= furthest.spec.to) {
      problems.push({ label: current.label, message: `ports overlap ${furthest.label}` });
    }
    if (furthest?.spec.protocol !== current.spec.protocol || current.spec.to > furthest.spec.to)
      furthest = current;
  }
  if (problems.length > 0) return { kind: 'invalid', problems };
  return { kind: 'labeled', policy: all === undefined ? { ports } : { all, ports } };
}

/** The label that decides one port of a labelled container, and its sources; undefined if none covers it. */
export function decisionFor(
  policy: ContainerPolicy,
  port: number,
  protocol: Protocol,
): { readonly label: string; readonly sources: SourceSet } | undefined {
  const own = policy.ports.find(
    (p) => p.spec.protocol === protocol && p.spec.from <= port && port <= p.spec.to,
  );
  if (own !== undefined) return { label: own.label, sources: own.sources };
  return policy.all === undefined ? undefined : { label: ALLOW_LABEL, sources: policy.all };
}

/** The sources a labelled container allows on one port, or undefined if no label covers it. */
export function sourcesFor(policy: ContainerPolicy, port: number, protocol: Protocol): SourceSet | undefined {
  return decisionFor(policy, port, protocol)?.sources;
}
