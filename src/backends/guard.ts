// What `dockfw guard` installs, whatever the backend: the rules a sync would
// want for an engine without containers.
import type { Config } from '../config/config.js';
import { desiredState, type DesiredState } from '../policy/desired.js';

/** The catch-all only, on every interface (no bridge is known before the engine runs). */
export function emptyDesired(config: Config): DesiredState {
  return { ...desiredState({ containers: [], bridges: [] }, config), bridgesUnknown: true };
}
