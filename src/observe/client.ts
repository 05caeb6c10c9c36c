// The CLI side of DOCKFW_LISTEN: `dockfw status` and `dockfw health` ask the
// running daemon over HTTP.
import { Config, ConfigError, SETTINGS, type ListenAddress } from '../config/config.js';

/** The URL to reach a daemon listening on `listen` (a wildcard address means this host). */
export function daemonUrl(listen: ListenAddress, path: string): string {
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  const shown = host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${listen.port}${path}`;
}

export interface DaemonAnswer {
  readonly status: number;
  readonly body: string;
}

/** The daemon did not answer at all (not running, wrong address, timed out). */
export class DaemonUnreachableError extends Error {
  override readonly name = 'DaemonUnreachableError';
}

export async function askDaemon(
  listen: ListenAddress,
  path: string,
  timeoutMs = 5_000,
): Promise<DaemonAnswer> {
  const url = daemonUrl(listen, path);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: response.status, body: await response.text() };
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
    const message = error instanceof Error ? error.message : String(error);
    throw new DaemonUnreachableError(`no answer from ${url}: ${cause ?? message}`);
  }
}

/** DOCKFW_LISTEN as the daemon reads it: the flag, else the environment, else the default. */
export function listenAddress(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ListenAddress | null {
  const text = (flag ?? env[SETTINGS.listen.env] ?? SETTINGS.listen.default).trim();
  const parsed = Config.shape.listen.safeParse(text);
  if (!parsed.success) {
    throw new ConfigError(
      `${flag === undefined ? SETTINGS.listen.env : '--listen'}=${JSON.stringify(text)}: expected host:port`,
    );
  }
  return parsed.data;
}
