// The one place that runs nft. Argument arrays, never a shell; the payload goes
// on stdin; a timeout so a stuck netlink call cannot stall the sidecar forever.
import { commandRunner, type CommandRunner } from '../command.js';

const HINT = 'install nftables (or put nft on PATH)';

export const runNft: CommandRunner = commandRunner(HINT);
/**
 * For the daemon: each `nft -f -` write hands its payload to one started after
 * the last write, so an event's write forks nothing (see RunnerOptions).
 */
export const runNftWarm: CommandRunner = commandRunner(HINT, { warmWrites: ['nft'] });
