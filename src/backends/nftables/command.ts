// The one place that runs nft. Argument arrays, never a shell; the payload goes
// on stdin; a timeout so a stuck netlink call cannot stall the sidecar forever.
import { execa } from 'execa';
import { CommandError, type CommandRunner } from '../iptables/command.js';

const TIMEOUT_MS = 30_000;

export const runNft: CommandRunner = async (file, args, input) => {
  const result = await execa(file, [...args], {
    reject: false,
    timeout: TIMEOUT_MS,
    stripFinalNewline: false,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  if (!result.failed) return { stdout: result.stdout };
  const shown = [file, ...args].join(' ');
  if (result.code === 'ENOENT') {
    throw new CommandError(`${file} not found: install nftables (or put nft on PATH)`, file, args, '', true);
  }
  if (result.timedOut) {
    throw new CommandError(
      `${shown} timed out after ${TIMEOUT_MS / 1000} s`,
      file,
      args,
      result.stderr,
      false,
    );
  }
  const detail = result.stderr.trim() || result.shortMessage;
  throw new CommandError(
    `${shown} failed (exit ${result.exitCode ?? '?'}): ${detail}`,
    file,
    args,
    result.stderr,
    false,
  );
};
