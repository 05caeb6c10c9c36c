// Which entry of a DesiredState judges a destination, and whether its sources
// hold an address (pure). The kernel's view: the first binding or rule in order
// that covers the address and port decides, as the first matching rule or the one
// interval element would. Shared by `dockfw explain` and the revocation judge.
import type { Family, Protocol } from '../docker/snapshot.js';
import type { Interval } from '../net/intervals.js';
import type { DesiredBinding, DesiredRule, DesiredState, RuleSources } from './desired.js';

/** The interval of `sources` holding `value`, `any`, or undefined when they do not hold it. */
export function sourceMatch(sources: RuleSources, value: bigint): Interval | 'any' | undefined {
  if (sources === 'any') return 'any';
  return sources.find((i) => i.start <= value && value <= i.end);
}

/** Whether a binding covers a host address (canonical text; undefined = every address) of its family. */
function hostAddressCovers(binding: DesiredBinding, family: Family, address: string | undefined): boolean {
  return binding.family === family && (binding.hostAddress === undefined || binding.hostAddress === address);
}

/** The DesiredBinding the kernel judges this host address and port by (first in order, as the kernel's). */
export function desiredBindingFor(
  desired: DesiredState,
  family: Family,
  address: string | undefined,
  protocol: Protocol,
  port: number,
): DesiredBinding | undefined {
  return desired.bindings.find(
    (b) =>
      hostAddressCovers(b, family, address) &&
      b.protocol === protocol &&
      b.portFrom <= port &&
      port <= b.portTo,
  );
}

/** The DesiredRule the kernel judges this container address (canonical text) and port by. */
export function desiredRuleFor(
  desired: DesiredState,
  family: Family,
  address: string,
  protocol: Protocol,
  port: number,
): DesiredRule | undefined {
  return desired.rules.find(
    (r) =>
      r.family === family &&
      r.address === address &&
      r.protocol === protocol &&
      r.portFrom <= port &&
      port <= r.portTo,
  );
}
