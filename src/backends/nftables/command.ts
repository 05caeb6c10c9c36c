// The one place that runs nft. Argument arrays, never a shell; the payload goes
// on stdin; a timeout so a stuck netlink call cannot stall the sidecar forever.
import { commandRunner, type CommandRunner } from '../command.js';

export const runNft: CommandRunner = commandRunner('install nftables (or put nft on PATH)');
