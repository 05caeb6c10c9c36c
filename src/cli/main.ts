#!/usr/bin/env node
// dockfw entry point: dispatches to one module per command, loaded on demand.
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { failureReport, wantsStack } from './failure.js';

/** A command module exports `run(argv)`, resolving to the process exit code. */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

interface Command {
  readonly summary: string;
  readonly load: () => Promise<CommandModule>;
}

/** Add a command here; its module is only imported when it runs. */
export const COMMANDS: Readonly<Record<string, Command>> = {
  plan: {
    summary: 'print the firewall payloads for the live engine or a docker inspect file',
    load: () => import('./plan.js'),
  },
  check: {
    summary: 'check dockfw labels in compose files and inspect JSON',
    load: () => import('./check.js'),
  },
  explain: {
    summary:
      'explain what dockfw does to a packet from SOURCE to TARGET (exit 0 allowed, 1 denied, 3 unknown)',
    load: () => import('./explain.js'),
  },
  run: { summary: 'run the sidecar: keep the firewall in step with Docker', load: () => import('./run.js') },
  guard: {
    summary: 'at boot, before docker.service: install only the fail-closed catch-all',
    load: () => import('./guard.js'),
  },
  uninstall: { summary: 'remove every rule and chain dockfw owns', load: () => import('./uninstall.js') },
  status: {
    summary: 'ask the running daemon what it enforces (exit 0 ready, 1 not, 2 no answer)',
    load: () => import('./status.js'),
  },
  health: {
    summary: 'exit 0 if the running daemon answers /healthz (for HEALTHCHECK)',
    load: () => import('./health.js'),
  },
};

export function version(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const commands = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'Usage: dockfw <command> [options]',
    '',
    "Keeps a Docker host's firewall in step with its containers' dockfw.allow labels.",
    '',
    'Commands:',
    ...commands,
    '',
    'Options:',
    '  --help     show help (also: dockfw <command> --help)',
    '  --version  print the version',
    '',
    'Exit status: 0 success; 1 failure (check: problems found; status: daemon not',
    'ready; health: no answer); 2 bad usage or configuration (status: daemon unreachable).',
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    process.stderr.write(`dockfw: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  try {
    const module = await command.load();
    return await module.run(rest);
  } catch (error) {
    // Commands report the failures they expect; anything else ends here, as one line.
    process.stderr.write(failureReport(name, error, wantsStack(rest, process.env), isRoot()));
    return error instanceof Error && (error.name === 'UsageError' || error.name === 'ConfigError') ? 2 : 1;
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // npm installs the bin as a symlink; import.meta.url is the real file.
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

// Run only when executed, not when imported (tests import main()).
if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(failureReport('', error, wantsStack(process.argv, process.env), isRoot()));
      process.exitCode = 1;
    },
  );
}
