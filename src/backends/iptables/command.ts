// The runner for the iptables tools (iptables-save, iptables-restore, ipset).
import { commandRunner, type CommandRunner } from '../command.js';

const HINT = 'install iptables (or put it on PATH)';

export const runCommand: CommandRunner = commandRunner(HINT);
/**
 * For the daemon: each `ipset restore` hands its lines to one started after the
 * last (see RunnerOptions); the iptables tools start per call as before.
 */
export const runCommandWarm: CommandRunner = commandRunner(HINT, { warmWrites: ['ipset'] });
