// `dockfw uninstall`: removes dockfw's jumps and chains (both families, every
// iptables variant where they exist) and its nftables table. Other rules are
// left alone. Stop `dockfw run` first, or it puts them back.
import { CommandError } from '../backends/command.js';
import { createBackends } from '../backends/create.js';
import type { Removal } from '../backends/firewall.js';
import { parse, UsageError } from './args.js';

const HELP = `Usage: dockfw uninstall

Removes every rule and chain dockfw owns (DOCKFW*) and its jump from DOCKER-USER
(or ip6tables FORWARD), in IPv4 and IPv6, in iptables-nft and iptables-legacy,
and the nftables table inet dockfw. Rules that others own are not touched.
Stop \`dockfw run\` first, or it re-adds them.
`;

export async function run(argv: string[]): Promise<number> {
  try {
    const { values } = parse(argv, { help: { type: 'boolean' } }, false);
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`dockfw uninstall: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  // A host may have only one of the two tools; what a missing tool manages cannot exist.
  const missing = (error: unknown): readonly Removal[] => {
    if (error instanceof CommandError && error.missing) return [];
    throw error;
  };
  const perBackend: (readonly Removal[])[] = [];
  for (const backend of createBackends()) perBackend.push(await backend.uninstall().catch(missing));
  // nftables first: its table is one line, the iptables chains follow per family and variant.
  const removals = perBackend.reverse().flat();
  if (removals.length === 0) {
    process.stdout.write('nothing to remove: no dockfw chains, jumps or nftables table found\n');
  }
  for (const removal of removals) {
    process.stdout.write(`${removal.text}\n`);
  }
  return 0;
}
