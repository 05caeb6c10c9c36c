// Where a port's answer comes from, in the same words in plan, status and check.
import type { PortSummary } from '../policy/desired.js';

/** `dockfw.allow.443`, `dockfw.allow`, `default policy` or `invalid label`. */
export function portOrigin(port: Pick<PortSummary, 'origin' | 'label'>): string {
  switch (port.origin) {
    case 'label':
      // A daemon older than this CLI sends no label name.
      return port.label ?? 'label';
    case 'default':
      return 'default policy';
    case 'invalid-label':
      return 'invalid label';
  }
}
