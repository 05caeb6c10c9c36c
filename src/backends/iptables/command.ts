// The runner for the iptables tools (iptables-save, iptables-restore, ipset).
import { commandRunner, type CommandRunner } from '../command.js';

export const runCommand: CommandRunner = commandRunner('install iptables (or put it on PATH)');
