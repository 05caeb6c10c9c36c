// `dockfw health`: liveness for the image's HEALTHCHECK. Exit 0 when the daemon
// answers GET /healthz with 200.
import { ConfigError } from '../config/config.js';
import { askDaemon, DaemonUnreachableError, listenAddress } from '../observe/client.js';
import { parse, UsageError } from './args.js';

const HELP = `Usage: dockfw health [--listen=HOST:PORT] [--timeout=SECONDS]

Checks that the running \`dockfw run\` is alive: GET /healthz on its DOCKFW_LISTEN
address (the image's HEALTHCHECK runs this). Liveness only; \`dockfw status\` and
/readyz say whether the firewall is in step.

Options:
  --listen=HOST:PORT   where the daemon listens; default: DOCKFW_LISTEN, else 127.0.0.1:9811
  --timeout=SECONDS    how long to wait for an answer (default 3)
  --help               show this help

Exit status:
  0  the daemon answered 200
  1  no answer, or not 200 (also when DOCKFW_LISTEN is empty: nothing to ask)
  2  bad usage
`;

export async function run(argv: string[]): Promise<number> {
  let listen;
  let timeoutMs;
  try {
    const { values } = parse(
      argv,
      { listen: { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean' } },
      false,
    );
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    listen = listenAddress(typeof values.listen === 'string' ? values.listen : undefined);
    timeoutMs = Number(typeof values.timeout === 'string' ? values.timeout : '3') * 1000;
    if (!(timeoutMs > 0 && timeoutMs <= 600_000)) throw new UsageError('--timeout: expected seconds, e.g. 3');
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`dockfw health: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  if (listen === null) {
    process.stderr.write('dockfw health: DOCKFW_LISTEN is empty: the daemon serves no /healthz\n');
    return 1;
  }
  try {
    const answer = await askDaemon(listen, '/healthz', timeoutMs);
    if (answer.status === 200) {
      process.stdout.write('ok\n');
      return 0;
    }
    process.stderr.write(`dockfw health: /healthz answered ${answer.status}\n`);
    return 1;
  } catch (error) {
    if (!(error instanceof DaemonUnreachableError)) throw error;
    process.stderr.write(`dockfw health: ${error.message}\n`);
    return 1;
  }
}
