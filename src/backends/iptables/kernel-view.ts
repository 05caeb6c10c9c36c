// What `dockfw explain` checks its verdict against in iptables: per family,
// where Docker's rules are and dockfw's filter and mangle tables as they are now.
import type { Family } from '../../docker/snapshot.js';
import type { IptablesFamilyView, KernelView } from '../kernel-check.js';
import { runCommand } from './command.js';
import { detectIpv4, detectIpv6, procLegacyTableNames, type Placement } from './detect.js';
import { readFamilySets } from './ipset.js';
import { readFilterTable } from './read.js';

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? 'failed';
}

export async function readIptables(families: readonly Family[]): Promise<KernelView> {
  const deps = { run: runCommand, legacyTableNames: procLegacyTableNames };
  const view: Partial<Record<Family, IptablesFamilyView>> = {};
  const reasons: Partial<Record<Family, string>> = {};
  const read = async (placement: Placement): Promise<IptablesFamilyView> => ({
    variant: placement.variant,
    parent: placement.parent,
    filter: placement.table,
    mangle: await readFilterTable(runCommand, placement.family, placement.variant, 'mangle'),
    sets: await readFamilySets(runCommand, placement.family),
  });
  let ipv4: Placement | undefined;
  try {
    ipv4 = await detectIpv4(deps);
    if (ipv4 === undefined) reasons[4] = "Docker's chains are not in iptables-nft nor iptables-legacy";
    else if (families.includes(4)) view[4] = await read(ipv4);
  } catch (error) {
    reasons[4] = message(error);
  }
  if (families.includes(6)) {
    try {
      view[6] = await read(await detectIpv6(deps, ipv4?.variant ?? 'nft'));
    } catch (error) {
      reasons[6] = message(error);
    }
  }
  return { backend: 'iptables', families: view, reasons };
}
