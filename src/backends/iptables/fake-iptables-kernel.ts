// A stateful stand-in for one variant's filter and mangle tables (both
// families), for runtime tests that need writes to stick: `*-save -t NAME`
// prints that table, `*-restore --noflush` applies each `*NAME … COMMIT`
// section all or nothing (`:CHAIN` creates or flushes, `-A`, `-I CHAIN N`, `-D`
// by rule text, `-X`; a line outside a section is refused, as the real tool
// does), and every restore is counted, so a test can say "this sync wrote nothing".
// `ipset` is the namespace's sets (FakeIpset): a set a rule of either family
// references cannot be destroyed.
import { CommandError, type CommandRunner } from '../command.js';
import { FakeIpset } from './fake-ipset.js';

type Table = Map<string, string[]>;
type TableName = 'filter' | 'mangle';

const BUILTIN: Record<TableName, ReadonlySet<string>> = {
  filter: new Set(['INPUT', 'FORWARD', 'OUTPUT']),
  mangle: new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']),
};

function builtinTable(name: TableName): Table {
  return new Map([...BUILTIN[name]].map((chain) => [chain, []]));
}

export class FakeIptablesKernel {
  private readonly tables: Record<4 | 6, Table> = { 4: new Map(), 6: new Map() };
  private readonly mangles: Record<4 | 6, Table> = { 4: builtinTable('mangle'), 6: builtinTable('mangle') };
  /** Every restore that was applied, in order. */
  readonly restores: { family: 4 | 6; payload: string }[] = [];
  /** Called after each applied restore (e.g. to play `nft monitor`; ipset writes never show there). */
  onWrite: (() => void) | undefined;
  /** The namespace's ipsets (shared by both families and variants, as in the kernel). */
  readonly ipset = new FakeIpset((name) => this.references(name));

  constructor(private readonly variant: 'nft' | 'legacy' = 'nft') {
    for (const family of [4, 6] as const) {
      const table = this.tables[family];
      for (const chain of BUILTIN.filter) table.set(chain, []);
      // What Docker makes: its user chain, jumped to from FORWARD.
      table.set('DOCKER-USER', []);
      table.get('FORWARD')?.push('-j DOCKER-USER');
    }
  }

  readonly run: CommandRunner = (file, args, input) => {
    if (file === 'ipset') return this.ipset.run(file, args, input);
    const match = /^(ip6?)tables-(nft|legacy)-(save|restore)$/.exec(file);
    if (!match || match[2] !== this.variant) {
      return Promise.reject(new CommandError(`${file} not found`, file, args, '', true));
    }
    const family = match[1] === 'ip6' ? 6 : 4;
    if (match[3] === 'save') {
      const at = args.indexOf('-t');
      const name = at >= 0 ? args[at + 1] : 'filter';
      if (name !== 'filter' && name !== 'mangle')
        return Promise.reject(new CommandError(`no table ${name}`, file, args, `no table ${name}`, false));
      return Promise.resolve({ stdout: this.save(family, name) });
    }
    try {
      this.applyPayload(family, input ?? '');
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return Promise.reject(new CommandError(message, file, args, message, false));
    }
    this.restores.push({ family, payload: input ?? '' });
    this.onWrite?.();
    return Promise.resolve({ stdout: '' });
  };

  /** Whether any rule of either family and table looks the set up. */
  private references(name: string): boolean {
    const tables = [this.tables[4], this.tables[6], this.mangles[4], this.mangles[6]];
    return tables.some((table) =>
      [...table.values()].some((rules) => rules.some((rule) => rule.split(/\s+/).includes(name))),
    );
  }

  private table(family: 4 | 6, name: TableName): Table {
    return name === 'filter' ? this.tables[family] : this.mangles[family];
  }

  /** Rules of one chain (rule text after `-A CHAIN `). */
  chain(family: 4 | 6, name: string, table: TableName = 'filter'): readonly string[] | undefined {
    return this.table(family, table).get(name);
  }

  /** An outside tool at work: e.g. `k.edit(4, t => t.set('DOCKER-USER', []))`. */
  edit(family: 4 | 6, change: (table: Table) => void, table: TableName = 'filter'): void {
    change(this.table(family, table));
  }

  save(family: 4 | 6, tableName: TableName = 'filter'): string {
    const table = this.table(family, tableName);
    const lines = [`*${tableName}`];
    for (const name of table.keys())
      lines.push(`:${name} ${BUILTIN[tableName].has(name) ? 'ACCEPT' : '-'} [0:0]`);
    for (const [name, rules] of table) for (const rule of rules) lines.push(`-A ${name} ${rule}`);
    return `${[...lines, 'COMMIT'].join('\n')}\n`;
  }

  /** Every section is checked before any is kept (the real tool commits per section; tests want no half state to hide). */
  private applyPayload(family: 4 | 6, payload: string): void {
    const next: Record<TableName, Table> = { filter: this.tables[family], mangle: this.mangles[family] };
    let section: { name: TableName; lines: string[] } | undefined;
    for (const raw of payload.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const head = /^\*(\S+)$/.exec(line);
      if (head) {
        const name = head[1];
        if (name !== 'filter' && name !== 'mangle')
          throw new Error(`fake iptables-restore: no table ${name}`);
        section = { name, lines: [] };
      } else if (line === 'COMMIT') {
        if (!section) throw new Error('fake iptables-restore: COMMIT outside a table');
        next[section.name] = this.apply(next[section.name], section.lines.join('\n'));
        section = undefined;
      } else if (!section) throw new Error(`fake iptables-restore: line outside a table: ${line}`);
      else section.lines.push(line);
    }
    if (section) throw new Error('fake iptables-restore: missing COMMIT');
    this.tables[family] = next.filter;
    this.mangles[family] = next.mangle;
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
      if (line === '' || line.startsWith('#')) continue;
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
