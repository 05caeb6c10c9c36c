// `dockfw guard`: run once at boot, before docker.service, so the containers
// dockerd restores are closed by the catch-all until `dockfw run` has judged
// them. Writes the fail-closed layout only where dockfw has no rules yet.
import { applyPayload } from '../backends/iptables/apply.js';
import { applySetBatch, listSetNames } from '../backends/iptables/ipset.js';
import { familySets, renderSetsFull } from '../backends/iptables/sets.js';
import { CommandError, runCommand } from '../backends/iptables/command.js';
import { readFilterTable, type Variant } from '../backends/iptables/read.js';
import { applyNftPayload } from '../backends/nftables/apply.js';
import { runNft } from '../backends/nftables/command.js';
import { readTable } from '../backends/nftables/read.js';
import { ConfigError, type Config } from '../config/config.js';
import type { Family } from '../docker/snapshot.js';
import type { DesiredState } from '../policy/desired.js';
import { CONFIG_OPTIONS, configFrom, configHelp, parse, UsageError } from './args.js';
import {
  emptyDesired,
  iptablesGuardPlan,
  nftablesGuardPlan,
  variantFromVersion,
  type GuardPlan,
} from './guard-plan.js';

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

const FAMILY_NAMES: Readonly<Record<Family, string>> = { 4: 'iptables', 6: 'ip6tables' };

function describe(plan: GuardPlan, where: string): string {
  return plan.kind === 'install'
    ? `${where}: installed the fail-closed catch-all\n`
    : `${where}: already guarded (${plan.holding.join(', ')} hold rules): left alone\n`;
}

async function iptablesVariant(flag: unknown): Promise<Variant> {
  if (flag === 'nft' || flag === 'legacy') return flag;
  if (flag !== undefined)
    throw new UsageError(`--iptables-variant must be nft or legacy, not ${JSON.stringify(flag)}`);
  const { stdout } = await runCommand('iptables', ['--version']);
  return variantFromVersion(stdout);
}

async function guardIptables(empty: DesiredState, variant: Variant): Promise<void> {
  for (const family of [4, 6] as const) {
    const where = `${FAMILY_NAMES[family]}-${variant}`;
    let table;
    try {
      table = await readFilterTable(runCommand, family, variant);
    } catch (error) {
      // A host without ip6tables has no IPv6 rules for Docker either.
      if (family === 6 && error instanceof CommandError && error.missing) {
        process.stderr.write(`${where}: not installed, IPv6 not guarded\n`);
        continue;
      }
      throw error;
    }
    const plan = iptablesGuardPlan(empty, family, table);
    if (plan.kind === 'install') {
      // The rules look the verdicts up in dockfw's sets: empty ones first, as a sync without
      // containers leaves them (sets that outlived the chains may hold verdicts of before).
      const names = await listSetNames(runCommand);
      const leftovers = new Set([...names].filter((n) => n.startsWith('dockfw-') && n.endsWith('-t')));
      await applySetBatch(
        runCommand,
        family,
        renderSetsFull(family, familySets(empty, family), names, leftovers),
      );
      await applyPayload(runCommand, family, variant, plan.payload);
    }
    process.stdout.write(describe(plan, where));
  }
}

async function guardNftables(empty: DesiredState): Promise<void> {
  const plan = nftablesGuardPlan(empty, await readTable(runNft));
  if (plan.kind === 'install') await applyNftPayload(runNft, plan.payload);
  process.stdout.write(describe(plan, 'nftables table inet dockfw'));
}

export async function run(argv: string[]): Promise<number> {
  let config: Config;
  let variantFlag: unknown;
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
    variantFlag = values['iptables-variant'];
    if (variantFlag !== undefined) await iptablesVariant(variantFlag);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw guard: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const empty = emptyDesired(config);
  try {
    // At boot there is no engine to ask: `auto` means iptables (Docker 29's nftables
    // firewall needs DOCKFW_BACKEND=nftables here).
    if (config.backend === 'nftables') await guardNftables(empty);
    else await guardIptables(empty, await iptablesVariant(variantFlag));
  } catch (error) {
    process.stderr.write(`dockfw guard: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  return 0;
}
