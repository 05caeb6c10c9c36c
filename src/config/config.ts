// Environment variables and command-line flags → Config. Flags win over the environment.
import { validate as isValidCron } from 'node-cron';
import { z } from 'zod';
import { parseIPv4, parseIPv6 } from '../net/ip.js';

export const BACKENDS = ['auto', 'iptables', 'nftables'] as const;
export const DEFAULT_POLICIES = ['allow', 'deny'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** One setting: its environment variable, its flag and its default. */
export interface Setting {
  readonly env: string;
  readonly flag: string;
  readonly default: string;
  readonly help: string;
}

export const SETTINGS = {
  dockerHost: {
    env: 'DOCKER_HOST',
    flag: 'docker-host',
    default: 'unix:///var/run/docker.sock',
    help: 'Docker API endpoint (unix://, tcp://, http://, https://, ssh://)',
  },
  backend: { env: 'DOCKFW_BACKEND', flag: 'backend', default: 'auto', help: 'auto, iptables or nftables' },
  externalInterfaces: {
    env: 'DOCKFW_EXTERNAL_INTERFACES',
    flag: 'external-interfaces',
    default: '',
    help: 'comma-separated interfaces that count as outside; empty: every interface except lo and Docker bridges',
  },
  defaultPolicy: {
    env: 'DOCKFW_DEFAULT_POLICY',
    flag: 'default-policy',
    default: 'allow',
    help: 'allow or deny: what happens to published ports without a dockfw.allow label',
  },
  resync: {
    env: 'DOCKFW_RESYNC',
    flag: 'resync',
    default: '* * * * *',
    help: 'cron expression for the periodic check (5 or 6 fields); every 10th reads everything',
  },
  listen: {
    env: 'DOCKFW_LISTEN',
    flag: 'listen',
    default: '127.0.0.1:9811',
    help: 'host:port for /healthz, /readyz and /metrics; empty: off',
  },
  dropRecords: {
    env: 'DOCKFW_DROP_RECORDS',
    flag: 'drop-records',
    default: '65536',
    help: 'drop records kept by the kernel per family (who was dropped, where, how often); 0: none',
  },
  logDrops: {
    env: 'DOCKFW_LOG_DROPS',
    flag: 'log-drops',
    default: 'off',
    help: 'on: log one line per dropped source, container and port, at most once a minute',
  },
  logLevel: {
    env: 'DOCKFW_LOG_LEVEL',
    flag: 'log-level',
    default: 'info',
    help: LOG_LEVELS.join(', '),
  },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;
export type ConfigFlags = Partial<Record<SettingName, string | undefined>>;

const INTERFACE_NAME = /^[A-Za-z0-9_.+-]{1,15}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

function parseListen(text: string, ctx: z.RefinementCtx): ListenAddress | null {
  if (text === '') return null;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  const hostOk =
    host !== undefined &&
    (match?.[1] !== undefined
      ? parseIPv6(host) !== undefined
      : parseIPv4(host) !== undefined || HOSTNAME.test(host));
  if (!hostOk || !(port >= 1 && port <= 65535)) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected host:port, e.g. 127.0.0.1:9811 or [::1]:9811, or empty',
    });
    return z.NEVER;
  }
  return { host, port };
}

export const Config = z.object({
  dockerHost: z
    .string()
    .regex(
      /^(unix|tcp|http|https|ssh|npipe):\/\/./,
      'expected unix://PATH, tcp://HOST:PORT, http(s)://… or ssh://…',
    ),
  backend: z.enum(BACKENDS),
  externalInterfaces: z
    .string()
    .transform((text) => text.split(',').map((name) => name.trim()))
    .transform((names) => (names.length === 1 && names[0] === '' ? [] : names))
    .pipe(
      z.array(z.string().regex(INTERFACE_NAME, 'interface names are 1-15 characters of A-Z a-z 0-9 _ . + -')),
    )
    .transform((names) => [...new Set(names)].sort()),
  defaultPolicy: z.enum(DEFAULT_POLICIES),
  resync: z.string().refine((expression) => isValidCron(expression), 'not a valid cron expression'),
  listen: z.string().transform(parseListen),
  dropRecords: z
    .string()
    .regex(/^[0-9]{1,7}$/, 'expected a number of records, 0-1048576')
    .transform(Number)
    .pipe(z.number().int().min(0).max(1_048_576)),
  logDrops: z.enum(['on', 'off']).transform((value) => value === 'on'),
  logLevel: z.enum(LOG_LEVELS),
});
export type Config = z.infer<typeof Config>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads every setting from flags, else the environment, else its default.
 * Throws ConfigError naming each bad setting (the CLI exits 2).
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  flags: ConfigFlags = {},
): Config {
  const raw: Record<string, string> = {};
  for (const [name, setting] of Object.entries(SETTINGS) as [SettingName, Setting][]) {
    const given = (flags[name] ?? env[setting.env])?.trim();
    // Empty means "off" for these two; for the rest, like an unset variable.
    const emptyIsMeaningful = name === 'listen' || name === 'externalInterfaces';
    raw[name] = given === undefined || (given === '' && !emptyIsMeaningful) ? setting.default : given;
  }
  const result = Config.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = issue.path[0] as SettingName;
    const setting: Setting = SETTINGS[name];
    const source = flags[name] !== undefined ? `--${setting.flag}` : setting.env;
    return `${source}=${JSON.stringify(raw[name])}: ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
}

/** The built-in defaults, as if nothing were set. */
export function defaultConfig(): Config {
  return loadConfig({});
}
