// A stateful stand-in for `ipset` in one network namespace, for unit tests. It
// refuses what the real tool refuses where dockfw could get it wrong: a set
// type the kernel lacks (hash:net,port,net is not built everywhere), /0 nets,
// an element added twice or deleted when absent without -exist, create over an
// existing set without -exist (or with other parameters), swap across types or
// families, destroy of a set a rule references; `restore` stops at its first
// failing line, as the real one does.
import { CommandError, type CommandRunner } from '../command.js';
import { canonicalElement } from './sets.js';

interface FakeSet {
  type: string;
  family: 'inet' | 'inet6';
  maxelem: number;
  options: string;
  elements: Set<string>;
}

const TYPES = new Set(['hash:ip,port', 'hash:net,port', 'hash:ip,port,net', 'hash:ip,port,ip']);

export class FakeIpset {
  private readonly sets = new Map<string, FakeSet>();
  /** Every batch `ipset restore` was given, in order (applied or not). */
  readonly batches: string[] = [];
  /** Commands other than save/list, in order. */
  readonly writes: string[] = [];

  /** `referenced(name)`: whether a rule uses the set (then destroy refuses). */
  constructor(private readonly referenced: (name: string) => boolean = () => false) {}

  readonly run: CommandRunner = (_file, args, input) => {
    try {
      if (args[0] === 'restore') {
        this.batches.push(input ?? '');
        this.restore(input ?? '');
        return Promise.resolve({ stdout: '' });
      }
      return Promise.resolve({ stdout: this.command([...args]) });
    } catch (error) {
      const message = `ipset v7.17: ${error instanceof Error ? error.message : String(error)}`;
      return Promise.reject(new CommandError(message, 'ipset', args, message, false));
    }
  };

  /** Canonical elements of a set, or undefined when it does not exist. */
  elements(name: string): string[] | undefined {
    const set = this.sets.get(name);
    return set === undefined ? undefined : [...set.elements].sort();
  }

  names(): string[] {
    return [...this.sets.keys()].sort();
  }

  /** Someone else at work, e.g. `ipset flush dockfw-allowed4`; returns what the command prints. */
  tamper(args: string[]): string {
    return this.command(args);
  }

  /** An `ipset restore` batch applied at once (throws where the real one stops). */
  restoreNow(batch: string): void {
    this.batches.push(batch);
    this.restore(batch);
  }

  private restore(text: string): void {
    text.split('\n').forEach((line, index) => {
      if (line.trim() === '' || line.startsWith('#')) return;
      try {
        this.command(line.trim().split(/\s+/));
      } catch (error) {
        throw new Error(
          `Error in line ${index + 1}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    });
  }

  private set(name: string | undefined): FakeSet {
    const set = this.sets.get(name ?? '');
    if (set === undefined) throw new Error('The set with the given name does not exist');
    return set;
  }

  /** Elements one add/del names: port ranges expand, as the real tool does. */
  private expand(set: FakeSet, text: string): string[] {
    const parts = text.split(',');
    const service = parts[1] ?? '';
    const range = /^(\w+):(\d+)-(\d+)$/.exec(service);
    const texts =
      range === null
        ? [text]
        : Array.from({ length: Number(range[3]) - Number(range[2]) + 1 }, (_, i) =>
            [parts[0], `${range[1]}:${Number(range[2]) + i}`, ...parts.slice(2)].join(','),
          );
    return texts.map((t) => {
      if (/\/0(?:,|$)/.test(t))
        throw new Error('The value of the CIDR parameter of the IP address is invalid');
      const element = canonicalElement(set.type, set.family === 'inet6' ? 6 : 4, t);
      if (element === undefined) throw new Error(`Syntax error: cannot parse ${t}`);
      return element;
    });
  }

  private command(args: string[]): string {
    const exist = args.includes('-exist');
    const words = args.filter((a) => a !== '-exist');
    const [verb, name, ...rest] = words;
    if (verb !== 'save' && verb !== 'list') this.writes.push(args.join(' '));
    switch (verb) {
      case 'create': {
        const [type = '', ...options] = rest;
        if (!TYPES.has(type)) throw new Error('Kernel error received: set type not supported');
        const option = (key: string): string | undefined => {
          const i = options.indexOf(key);
          return i < 0 ? undefined : options[i + 1];
        };
        const family = option('family') === 'inet6' ? 'inet6' : 'inet';
        const created: FakeSet = {
          type,
          family,
          maxelem: Number(option('maxelem') ?? 65536),
          options: options.join(' '),
          elements: new Set(),
        };
        const existing = this.sets.get(name ?? '');
        if (existing !== undefined) {
          if (exist && existing.type === type && existing.options === created.options) return '';
          throw new Error('Set cannot be created: set with the same name already exists');
        }
        this.sets.set(name ?? '', created);
        return '';
      }
      case 'add': {
        const set = this.set(name);
        for (const element of this.expand(set, rest[0] ?? '')) {
          if (set.elements.has(element)) {
            if (exist) continue;
            throw new Error("Element cannot be added to the set: it's already added");
          }
          if (set.elements.size >= set.maxelem) throw new Error('Hash is full, cannot add more elements');
          set.elements.add(element);
        }
        return '';
      }
      case 'del': {
        const set = this.set(name);
        for (const element of this.expand(set, rest[0] ?? '')) {
          if (!set.elements.delete(element) && !exist)
            throw new Error("Element cannot be deleted from the set: it's not added");
        }
        return '';
      }
      case 'flush':
        this.set(name).elements.clear();
        return '';
      case 'destroy':
        this.set(name);
        if (this.referenced(name ?? ''))
          throw new Error('Set cannot be destroyed: it is in use by a kernel component');
        this.sets.delete(name ?? '');
        return '';
      case 'swap': {
        const a = this.set(name);
        const other = rest[0] ?? '';
        if (!this.sets.has(other)) throw new Error('Sets cannot be swapped: the second set does not exist');
        const b = this.set(other);
        if (a.type !== b.type || a.family !== b.family)
          throw new Error('The sets cannot be swapped: their type does not match');
        this.sets.set(name ?? '', b);
        this.sets.set(other, a);
        return '';
      }
      case 'list':
        if (name === '-n')
          return this.names()
            .map((n) => `${n}\n`)
            .join('');
        if (name === '-t')
          return this.names()
            .map((n) => {
              const set = this.set(n);
              const header = `family ${set.family} hashsize 1024 maxelem ${set.maxelem} bucketsize 12 initval 0x1`;
              return `Name: ${n}\nType: ${set.type}\nRevision: 1\nHeader: ${header}\nSize in memory: 1\nReferences: 0\nNumber of entries: ${set.elements.size}\n`;
            })
            .join('\n');
        throw new Error(`fake ipset: list ${name ?? ''} not supported`);
      case 'save': {
        const names = name === undefined ? this.names() : [name];
        return names
          .map((n) => {
            const set = this.set(n);
            const head = `create ${n} ${set.type} family ${set.family} hashsize 1024 maxelem ${set.maxelem} bucketsize 12 initval 0x1\n`;
            return head + [...set.elements].map((e) => `add ${n} ${e}\n`).join('');
          })
          .join('');
      }
      default:
        throw new Error(`fake ipset does not understand: ${args.join(' ')}`);
    }
  }
}
