// A fake of `nft` for unit tests: `list table` answers with the JSON nft would
// print for a table state; `-f -` records the payload. Absent: acts as not installed.
import { CommandError, type CommandRunner } from '../command.js';
import type { TableSpec } from './elements.js';
import {
  BASE_CHAINS,
  RECORD_SET_NAMES,
  RECORD_SET_TYPES,
  RECORD_TIMEOUT_SECONDS,
  SET_NAMES,
  SET_TYPES,
  TABLE_FAMILY,
  TABLE_NAME,
} from './names.js';
import { regularChains, rulesOf, ruleComment } from './render.js';

/** One element field as nft -j prints it: prefixes and ranges as objects, ports as numbers. */
function jsonField(type: string, text: string): unknown {
  if (type === 'ifname') return text.slice(1, -1);
  if (type === 'inet_proto') return text;
  if (type === 'inet_service') {
    const [from = '', to] = text.split('-');
    return to === undefined ? Number(from) : { range: [Number(from), Number(to)] };
  }
  if (text.includes('/')) {
    const [addr, len] = text.split('/');
    return { prefix: { addr, len: Number(len) } };
  }
  const dash = text.indexOf('-');
  return dash < 0 ? text : { range: [text.slice(0, dash), text.slice(dash + 1)] };
}

export function jsonElement(types: readonly string[], text: string): unknown {
  const parts = text.split(' . ');
  if (types.length === 1) return jsonField(types[0] ?? '', text);
  return { concat: parts.map((p, i) => jsonField(types[i] ?? '', p)) };
}

/** What `nft -j list table inet dockfw` prints once `spec` is loaded. */
export function tableJson(spec: TableSpec, edit: (items: unknown[]) => unknown[] = (x) => x): string {
  const base = { family: TABLE_FAMILY, table: TABLE_NAME };
  const items: unknown[] = [
    { metainfo: { version: '1.0.6', json_schema_version: 1 } },
    { table: { family: TABLE_FAMILY, name: TABLE_NAME, handle: 1 } },
    ...SET_NAMES.filter((n) => spec.sets.has(n)).map((name) => {
      const types = SET_TYPES[name];
      const elements = spec.sets.get(name) ?? [];
      return {
        set: {
          ...base,
          name,
          type: types.length === 1 ? types[0] : types,
          flags: ['interval'],
          ...(elements.length === 0 ? {} : { elem: elements.map((e) => jsonElement(types, e)) }),
        },
      };
    }),
    ...((spec.records ?? 0) > 0 ? RECORD_SET_NAMES : []).map((name) => ({
      set: {
        ...base,
        name,
        type: RECORD_SET_TYPES[name],
        size: spec.records,
        flags: ['timeout'],
        timeout: RECORD_TIMEOUT_SECONDS,
        stmt: [{ counter: null }],
      },
    })),
    ...regularChains(spec).flatMap((name, c) => [
      { chain: { ...base, name } },
      ...rulesOf(name, spec).map((r, i) => ({
        rule: { ...base, chain: name, handle: 10 * (c + 1) + i, comment: ruleComment(r.role), expr: [] },
      })),
    ]),
    ...BASE_CHAINS.flatMap((chain, c) => [
      {
        chain: {
          ...base,
          name: chain.name,
          type: 'filter',
          hook: chain.hook,
          prio: chain.priority,
          policy: 'accept',
        },
      },
      ...rulesOf(chain.name, spec).map((r, i) => ({
        rule: {
          ...base,
          chain: chain.name,
          handle: 100 * (c + 1) + i,
          comment: ruleComment(r.role),
          expr: [],
        },
      })),
    ]),
  ];
  return JSON.stringify({ nftables: edit(items) });
}

export interface FakeNft {
  readonly run: CommandRunner;
  /** Payloads given to `nft -f -`, in order. */
  readonly payloads: string[];
  /** The JSON the next `list table` prints; undefined: the table does not exist. */
  listing: string | undefined;
}

export function fakeNft(
  listing: string | undefined,
  options: { missing?: boolean; reject?: CommandError } = {},
): FakeNft {
  const fake: FakeNft = {
    payloads: [],
    listing,
    run: (file, args, input) => {
      if (options.missing === true)
        return Promise.reject(new CommandError(`${file} not found`, file, args, '', true));
      if (args[0] === '-f') {
        if (options.reject) return Promise.reject(options.reject);
        fake.payloads.push(input ?? '');
        return Promise.resolve({ stdout: '' });
      }
      if (fake.listing === undefined) {
        const stderr = `Error: No such file or directory\nlist table ${TABLE_FAMILY} ${TABLE_NAME}\n`;
        return Promise.reject(new CommandError('nft failed', file, args, stderr, false));
      }
      return Promise.resolve({ stdout: fake.listing });
    },
  };
  return fake;
}
