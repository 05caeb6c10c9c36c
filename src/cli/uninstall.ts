// `dockfw uninstall`: removes dockfw's jumps and chains (both families, every
// iptables variant where they exist) and its nftables table. Other rules are
// left alone. Stop `dockfw run` first, or it puts them back.
import { CommandError, runCommand } from '../backends/iptables/command.js';
import { uninstall, type UninstallReport } from '../backends/iptables/uninstall.js';
import { runNft } from '../backends/nftables/command.js';
import { uninstallNftables } from '../backends/nftables/uninstall.js';
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
  const missing = (error: unknown): undefined => {
    if (error instanceof CommandError && error.missing) return undefined;
    throw error;
  };
  const reports: UninstallReport[] = (await uninstall({ run: runCommand }).catch(missing)) ?? [];
  const table = await uninstallNftables(runNft).catch(missing);
  if (reports.length === 0 && table?.removed !== true) {
    process.stdout.write('nothing to remove: no dockfw chains, jumps or nftables table found\n');
  }
  if (table?.removed === true) process.stdout.write(`removed nftables table ${table.table}\n`);
  for (const report of reports) {
    process.stdout.write(
      `removed from ${report.family === 4 ? 'iptables' : 'ip6tables'}-${report.variant}: ${report.removedChains.join(', ') || 'jump'}\n`,
    );
  }
  return 0;
}
