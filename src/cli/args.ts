// Flag parsing shared by the commands: the config flags and a help text for them.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig, SETTINGS, type Config, type ConfigFlags, type SettingName } from '../config/config.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** `--backend`, `--resync`, … one string option per setting. */
export const CONFIG_OPTIONS: Options = Object.fromEntries(
  Object.values(SETTINGS).map((setting) => [setting.flag, { type: 'string' as const }]),
);

export function configFlags(values: Record<string, unknown>): ConfigFlags {
  const flags: ConfigFlags = {};
  for (const [name, setting] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    const value = values[setting.flag];
    if (typeof value === 'string') flags[name] = value;
  }
  return flags;
}

/** Config from the parsed flags and the process environment (throws ConfigError). */
export function configFrom(values: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Config {
  return loadConfig(env, configFlags(values));
}

export function configHelp(): string {
  const rows = Object.values(SETTINGS).map((s) => {
    const left = `  --${s.flag}=VALUE`;
    const shown = s.default === '' ? '(empty)' : s.default;
    return `${left.padEnd(31)} ${s.env}; default ${shown}\n${' '.repeat(32)}${s.help}`;
  });
  return ['Configuration (flag, else environment variable, else default):', ...rows].join('\n');
}

/** Thrown for bad command-line usage; the CLI prints it and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** parseArgs, with its errors turned into UsageError. */
export function parse(argv: string[], options: Options, allowPositionals: boolean) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}
