// A fake of the iptables tools for unit tests: `*-save` prints a canned table
// per command; `*-restore` records its payload; `ipset` is a stateful FakeIpset
// (pass `null` for a host without it). Absent commands act as not installed.
import { CommandError, type CommandRunner } from '../command.js';
import { FakeIpset } from './fake-ipset.js';

export interface FakeIptables {
  readonly run: CommandRunner;
  /** Every restore call: command and payload. */
  readonly restores: { file: string; payload: string }[];
  /** Every command run, in order. */
  readonly calls: string[];
  readonly ipset: FakeIpset | null;
}

/** `saves` maps e.g. 'iptables-nft-save' to its output. */
export function fakeIptables(
  saves: Record<string, string>,
  restoreError?: CommandError,
  ipset: FakeIpset | null = new FakeIpset(),
): FakeIptables {
  const restores: FakeIptables['restores'] = [];
  const calls: string[] = [];
  const run: CommandRunner = (file, args, input) => {
    calls.push([file, ...args].join(' '));
    if (file === 'ipset' && ipset !== null) return ipset.run(file, args, input);
    if (file.endsWith('-restore')) {
      const saveName = file.replace(/-restore$/, '-save');
      if (!(saveName in saves))
        return Promise.reject(new CommandError(`${file} not found`, file, args, '', true));
      if (restoreError) return Promise.reject(restoreError);
      restores.push({ file, payload: input ?? '' });
      return Promise.resolve({ stdout: '' });
    }
    const output = saves[file];
    if (output === undefined)
      return Promise.reject(new CommandError(`${file} not found`, file, args, '', true));
    return Promise.resolve({ stdout: output });
  };
  return { run, restores, calls, ipset };
}

/** iptables-save text for a filter (or another) table given as chain → rules. */
export function saveText(chains: Record<string, readonly string[]>, table = 'filter'): string {
  const lines = [`*${table}`, ...Object.keys(chains).map((name) => `:${name} - [0:0]`)];
  for (const [name, rules] of Object.entries(chains))
    lines.push(...rules.map((rule) => `-A ${name} ${rule}`));
  return `${[...lines, 'COMMIT'].join('\n')}\n`;
}
