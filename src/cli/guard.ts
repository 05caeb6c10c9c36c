// `dockfw guard`: run once at boot, before docker.service, so the containers
// dockerd restores are closed by the catch-all until `dockfw run` has judged
// them. Writes the fail-closed layout only where dockfw has no rules yet.
import { emptyDesired } from '../backends/guard.js';
import { createBackend } from '../backends/create.js';
import type { GuardOutcome, IptablesVariant } from '../backends/firewall.js';
import { ConfigError, type Config } from '../config/config.js';
import { CONFIG_OPTIONS, configFrom, configHelp, parse, UsageError } from './args.js';

const HELP = `Usage: dockfw guard [--iptables-variant nft|legacy] [configuration flags]

Run once at boot, before docker.service starts (see packaging/dockfw-guard.service).
Installs dockfw's fail-closed layout with no container rules: the catch-all drops
every new connection from outside to a Docker bridge until \`dockfw run\` has made
its first sync, which replaces it in one transaction. So the containers dockerd
restarts at boot are closed, not open, until dockfw has judged their labels.

iptables (DOCKFW_BACKEND auto or iptables): dockfw's chains and the jump first in
DOCKER-USER, in IPv4 and IPv6; DOCKER-USER is created when missing (dockerd keeps
it and its rules, and adds its FORWARD jump to it). The variant is the one the
\`iptables\` on PATH is (\`iptables --version\`), as dockerd would use it.
nftables (DOCKFW_BACKEND=nftables): table inet dockfw with empty sets.

Where dockfw's chains (or table) already hold rules, nothing is changed: guard
never weakens what a running or earlier dockfw wrote. Exit status: 0 installed
or already guarded; 1 failure; 2 bad usage or configuration.

Options:
  --iptables-variant nft|legacy   instead of asking \`iptables --version\`
  --help                          this text

${configHelp()}
`;

function describe({ where, plan }: GuardOutcome): string {
  if (plan === undefined) return `${where}: not installed, not guarded\n`;
  return plan.kind === 'install'
    ? `${where}: installed the fail-closed catch-all\n`
    : `${where}: already guarded (${plan.holding.join(', ')} hold rules): left alone\n`;
}

function iptablesVariant(flag: unknown): IptablesVariant | undefined {
  if (flag === undefined || flag === 'nft' || flag === 'legacy') return flag;
  throw new UsageError(`--iptables-variant must be nft or legacy, not ${JSON.stringify(flag)}`);
}

export async function run(argv: string[]): Promise<number> {
  let config: Config;
  let variant: IptablesVariant | undefined;
  try {
    const { values } = parse(
      argv,
      { ...CONFIG_OPTIONS, 'iptables-variant': { type: 'string' }, help: { type: 'boolean' } },
      false,
    );
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    config = configFrom(values);
    variant = iptablesVariant(values['iptables-variant']);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw guard: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  try {
    // At boot there is no engine to ask: `auto` means iptables (Docker 29's nftables
    // firewall needs DOCKFW_BACKEND=nftables here).
    const backend = config.backend === 'nftables' ? 'nftables' : 'iptables';
    const firewall = createBackend(backend, variant === undefined ? {} : { iptablesVariant: variant });
    for (const outcome of await firewall.guard(emptyDesired(config))) {
      const text = describe(outcome);
      if (outcome.plan === undefined) process.stderr.write(text);
      else process.stdout.write(text);
    }
  } catch (error) {
    process.stderr.write(`dockfw guard: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  return 0;
}
