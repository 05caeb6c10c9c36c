// A stand-in for the conntrack tool in unit tests: a connection table that
// lists itself as `conntrack -L -f FAMILY -o extended` prints it, and deletes by
// original tuple. It rejects what the real tool rejects (unknown options, an
// address of the other family, a bad port) and, like it, exits 1 when a delete
// matched nothing.
import type { Family } from '../net/family.js';
import { formatAddress, parseIPv4, parseIPv6 } from '../net/ip.js';
import type { Flow } from '../policy/judge-flow.js';
import { CommandError, type CommandRunner } from './command.js';

const FAMILY_NAMES: Readonly<Record<Family, string>> = { 4: 'ipv4', 6: 'ipv6' };
const NUMBERS = { ipv4: 2, ipv6: 10, tcp: 6, udp: 17, sctp: 132 } as const;

export interface FakeConntrack {
  readonly run: CommandRunner;
  readonly flows: Flow[];
  readonly calls: string[][];
  /** Make the next commands fail like a kernel without conntrack netlink. */
  failing: boolean;
}

function line(flow: Flow): string {
  const a = (v: bigint): string => formatAddress(flow.family, v);
  const state = flow.protocol === 'tcp' ? ' ESTABLISHED' : '';
  return (
    `${FAMILY_NAMES[flow.family]}     ${NUMBERS[FAMILY_NAMES[flow.family] as 'ipv4' | 'ipv6']} ` +
    `${flow.protocol}      ${NUMBERS[flow.protocol]} 431999${state} ` +
    `src=${a(flow.source)} dst=${a(flow.destination)} sport=${flow.sourcePort} dport=${flow.destinationPort} ` +
    `src=${a(flow.replySource)} dst=${a(flow.source)} sport=${flow.replySourcePort} dport=${flow.sourcePort} ` +
    '[ASSURED] mark=0 use=1'
  );
}

function reject(args: readonly string[], message: string, exit = 2): never {
  const stderr = `conntrack v1.4.7 (conntrack-tools): ${message}\n`;
  throw new CommandError(
    `conntrack ${args.join(' ')} failed (exit ${exit}): ${message}`,
    'conntrack',
    args,
    stderr,
    false,
  );
}

export function fakeConntrack(flows: Flow[] = []): FakeConntrack {
  const fake: FakeConntrack = {
    flows,
    calls: [],
    failing: false,
    run: async (file, args) => {
      await Promise.resolve();
      fake.calls.push([file, ...args]);
      if (file !== 'conntrack') throw new Error(`fake conntrack cannot run ${file}`);
      if (fake.failing) reject(args, 'Operation failed: Protocol not supported', 1);
      const family = args[2] === 'ipv4' ? 4 : args[2] === 'ipv6' ? 6 : undefined;
      if (args[1] !== '-f' || family === undefined) reject(args, 'unknown layer 3 protocol');
      if (args[0] === '-L') {
        if (args.length !== 5 || args[3] !== '-o' || args[4] !== 'extended') reject(args, 'bad list options');
        return {
          stdout:
            fake.flows
              .filter((f) => f.family === family)
              .map(line)
              .join('\n') + '\n',
        };
      }
      if (args[0] !== '-D') reject(args, `unknown command ${String(args[0])}`);
      const names = ['-p', '--orig-src', '--orig-dst', '--orig-port-src', '--orig-port-dst'];
      if (args.length !== 3 + names.length * 2 || names.some((n, i) => args[3 + i * 2] !== n))
        reject(args, 'bad delete options');
      const value = (i: number): string => args[4 + i * 2] ?? '';
      const protocol = value(0);
      if (!['tcp', 'udp', 'sctp'].includes(protocol)) reject(args, `unknown protocol ${protocol}`);
      const parse = family === 4 ? parseIPv4 : parseIPv6;
      const source = parse(value(1));
      const destination = parse(value(2));
      if (source === undefined || destination === undefined) reject(args, 'Bad IP address');
      const ports = [value(3), value(4)].map((p) => (/^\d{1,5}$/.test(p) ? Number(p) : NaN));
      if (ports.some((p) => !(p >= 0 && p <= 65535))) reject(args, 'Bad port');
      const before = fake.flows.length;
      const kept = fake.flows.filter(
        (f) =>
          !(
            f.family === family &&
            f.protocol === protocol &&
            f.source === source &&
            f.destination === destination &&
            f.sourcePort === ports[0] &&
            f.destinationPort === ports[1]
          ),
      );
      fake.flows.splice(0, fake.flows.length, ...kept);
      const deleted = before - kept.length;
      if (deleted === 0) reject(args, '0 flow entries have been deleted.', 1);
      return { stdout: '' };
    },
  };
  return fake;
}
