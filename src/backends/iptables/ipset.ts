// The iptables backend's verdict sets in the kernel: read with `ipset save`
// (only dockfw's own sets), written with `ipset restore` batches. Argument
// arrays, never a shell; `ipset` names are checked before they reach it.
import type { Family } from '../../docker/snapshot.js';
import { CommandError, type CommandRunner } from '../command.js';
import { parseSetSave, SET_ROLES, setName, temporaryName, type SetSeen } from './sets.js';

const SET_NAME = /^dockfw-[a-z0-9-]{1,24}$/;

function checkedName(name: string): string {
  if (!SET_NAME.test(name)) throw new RangeError(`refusing ipset name ${JSON.stringify(name)}`);
  return name;
}

/** One set's `ipset save`, or undefined when it does not exist. */
async function saveOne(run: CommandRunner, name: string): Promise<string | undefined> {
  try {
    return (await run('ipset', ['save', checkedName(name)])).stdout;
  } catch (error) {
    if (error instanceof CommandError && !error.missing && /does not exist/.test(error.stderr))
      return undefined;
    throw error;
  }
}

/** Reads only the family's own verdict sets (never the drop records, never anyone else's), by name. */
export async function readFamilySets(run: CommandRunner, family: Family): Promise<Map<string, SetSeen>> {
  const names = SET_ROLES.map((role) => setName(role, family));
  const texts = await Promise.all(names.map((name) => saveOne(run, name)));
  return parseSetSave(texts.map((text) => text ?? '').join('\n'), new Set(names));
}

/** What `ipset list -t` says of a set: its kind and how many elements it holds, not which. */
export interface SetHeader {
  readonly type: string;
  readonly family: string;
  readonly maxelem: number;
  readonly entries: number;
}

/** `ipset list -t` text → headers by set name (a block the parse does not know is left out). */
export function parseSetHeaders(text: string): Map<string, SetHeader> {
  const headers = new Map<string, SetHeader>();
  for (const block of text.split(/\n(?=Name: )/)) {
    const lines = block.split('\n');
    const field = (key: string): string | undefined =>
      lines
        .find((line) => line.startsWith(`${key}: `))
        ?.slice(key.length + 2)
        .trim();
    const name = field('Name');
    const header = field('Header') ?? '';
    const family = /\bfamily (\S+)/.exec(header)?.[1];
    const maxelem = Number(/\bmaxelem (\d+)/.exec(header)?.[1]);
    const entries = Number(field('Number of entries'));
    const type = field('Type');
    if (name === undefined || type === undefined || family === undefined) continue;
    if (!Number.isInteger(maxelem) || !Number.isInteger(entries)) continue;
    headers.set(name, { type, family, maxelem, entries });
  }
  return headers;
}

/** Every set's header: one command, no elements listed (cheap however full the sets are). */
export async function readSetHeaders(run: CommandRunner): Promise<Map<string, SetHeader>> {
  const { stdout } = await run('ipset', ['list', '-t']);
  return parseSetHeaders(stdout);
}

/** Temporaries a full write that did not finish left behind. */
export async function readLeftovers(run: CommandRunner, family: Family): Promise<Set<string>> {
  const names = await listSetNames(run);
  return new Set(SET_ROLES.map((role) => temporaryName(role, family)).filter((name) => names.has(name)));
}

export class SetApplyError extends Error {
  constructor(
    message: string,
    readonly family: Family,
  ) {
    super(message);
    this.name = 'SetApplyError';
  }
}

/** One `ipset restore` batch; it stops at its first failing line. */
export async function applySetBatch(run: CommandRunner, family: Family, batch: string): Promise<void> {
  if (batch === '') return;
  try {
    await run('ipset', ['restore'], batch);
  } catch (error) {
    // A hung tool is not a set changed under the batch: retrying it at once would double the wait.
    if (!(error instanceof CommandError) || error.missing || error.timedOut) throw error;
    throw new SetApplyError(error.message, family);
  }
}

/** Destroys each named set that exists; one still referenced by a rule is left (and reported). */
export async function destroySets(run: CommandRunner, names: readonly string[]): Promise<string[]> {
  const destroyed: string[] = [];
  for (const name of names) {
    try {
      await run('ipset', ['destroy', checkedName(name)]);
      destroyed.push(name);
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      if (error.missing) return destroyed;
      if (/does not exist|in use/.test(error.stderr)) continue;
      throw error;
    }
  }
  return destroyed;
}

/** Names of every set in the namespace (`ipset list -n`). */
export async function listSetNames(run: CommandRunner): Promise<Set<string>> {
  const { stdout } = await run('ipset', ['list', '-n']);
  return new Set(
    stdout
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== ''),
  );
}
