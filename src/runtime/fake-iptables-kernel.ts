// A stateful stand-in for one variant's filter table (both families), for
// runtime tests that need writes to stick: `*-save -t filter` prints the table,
// `*-restore --noflush` applies a payload all or nothing (`:CHAIN` creates or
// flushes, `-A`, `-I CHAIN N`, `-D` by rule text, `-X`), and every restore is
// counted, so a test can say "this sync wrote nothing".
import { CommandError, type CommandRunner } from '../backends/iptables/command.js';

type Table = Map<string, string[]>;

const BUILTIN = new Set(['INPUT', 'FORWARD', 'OUTPUT']);

export class FakeIptablesKernel {
  private readonly tables: Record<4 | 6, Table> = { 4: new Map(), 6: new Map() };
  /** Every restore that was applied, in order. */
  readonly restores: { family: 4 | 6; payload: string }[] = [];
  /** Called after each applied restore (e.g. to play `nft monitor`). */
  onWrite: (() => void) | undefined;

  constructor(private readonly variant: 'nft' | 'legacy' = 'nft') {
    for (const family of [4, 6] as const) {
      const table = this.tables[family];
      for (const chain of BUILTIN) table.set(chain, []);
      // What Docker makes: its user chain, jumped to from FORWARD.
      table.set('DOCKER-USER', []);
      table.get('FORWARD')?.push('-j DOCKER-USER');
    }
  }

  readonly run: CommandRunner = (file, args, input) => {
    const match = /^(ip6?)tables-(nft|legacy)-(save|restore)$/.exec(file);
    if (!match || match[2] !== this.variant) {
      return Promise.reject(new CommandError(`${file} not found`, file, args, '', true));
    }
    const family = match[1] === 'ip6' ? 6 : 4;
    if (match[3] === 'save') return Promise.resolve({ stdout: this.save(family) });
    try {
      this.tables[family] = this.apply(this.tables[family], input ?? '');
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return Promise.reject(new CommandError(message, file, args, message, false));
    }
    this.restores.push({ family, payload: input ?? '' });
    this.onWrite?.();
    return Promise.resolve({ stdout: '' });
  };

  /** Rules of one chain (rule text after `-A CHAIN `). */
  chain(family: 4 | 6, name: string): readonly string[] | undefined {
    return this.tables[family].get(name);
  }

  /** An outside tool at work: e.g. `k.edit(4, t => t.set('DOCKER-USER', []))`. */
  edit(family: 4 | 6, change: (table: Table) => void): void {
    change(this.tables[family]);
  }

  save(family: 4 | 6): string {
    const table = this.tables[family];
    const lines = ['*filter'];
    for (const name of table.keys()) lines.push(`:${name} ${BUILTIN.has(name) ? 'ACCEPT' : '-'} [0:0]`);
    for (const [name, rules] of table) for (const rule of rules) lines.push(`-A ${name} ${rule}`);
    return `${[...lines, 'COMMIT'].join('\n')}\n`;
  }

  private apply(current: Table, payload: string): Table {
    const next: Table = new Map([...current].map(([name, rules]) => [name, [...rules]]));
    const chain = (name: string): string[] => {
      const rules = next.get(name);
      if (!rules) throw new Error(`no chain ${name}`);
      return rules;
    };
    for (const raw of payload.split('\n')) {
      const line = raw.trim();
      if (line === '' || line === '*filter' || line === 'COMMIT' || line.startsWith('#')) continue;
      let m: RegExpExecArray | null;
      if ((m = /^:(\S+)/.exec(line))) next.set(m[1] ?? '', []);
      else if ((m = /^-A (\S+) (.*)$/.exec(line))) chain(m[1] ?? '').push(m[2] ?? '');
      else if ((m = /^-I (\S+) (\d+) (.*)$/.exec(line)))
        chain(m[1] ?? '').splice(Number(m[2]) - 1, 0, m[3] ?? '');
      else if ((m = /^-D (\S+) (.*)$/.exec(line))) {
        const rules = chain(m[1] ?? '');
        const at = rules.indexOf(m[2] ?? '');
        if (at < 0) throw new Error(`no rule to delete: ${line}`);
        rules.splice(at, 1);
      } else if ((m = /^-X (\S+)$/.exec(line))) next.delete(m[1] ?? '');
      else throw new Error(`fake iptables-restore does not understand: ${line}`);
    }
    return next;
  }
}
