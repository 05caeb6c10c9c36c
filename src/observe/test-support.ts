// Shared by the observe tests: a desired state and family reports without a kernel.
import { NO_DRIFT, type FamilyReport } from '../backends/firewall.js';
import { defaultConfig } from '../config/config.js';
import { inspectJson } from '../docker/fake-docker-client.js';
import { parseInspect } from '../docker/inspect.js';
import { desiredState, type DesiredState } from '../policy/desired.js';

export const WEB_ID = 'a'.repeat(64);
export const DB_ID = 'b'.repeat(64);

/** web (labeled) and db (invalid label), both publishing port 80. */
export function exampleDesired(): DesiredState {
  const containers = [
    parseInspect(
      inspectJson({ id: WEB_ID, name: 'web', labels: { 'dockfw.allow': '203.0.113.11, 198.51.100.0/24' } }),
    ),
    parseInspect(
      inspectJson({
        id: DB_ID,
        name: 'db',
        ipv4: '172.17.0.3',
        labels: { 'dockfw.allow': '203.0.113.0/33' },
      }),
    ),
  ];
  return desiredState({ containers, bridges: ['docker0'] }, defaultConfig());
}

export function familyReport(family: 4 | 6, written: boolean): FamilyReport {
  const placement = { kind: 'iptables', variant: 'nft', parent: 'DOCKER-USER' } as const;
  return { family, placement, drift: NO_DRIFT, written };
}
