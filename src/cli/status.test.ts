// `dockfw status` and `dockfw health` against a real observe server on loopback.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startObserveServer, type ObserveServer } from '../observe/http.js';
import { memoryLogger } from '../observe/memory-logger.js';
import { DaemonMetrics } from '../observe/metrics.js';
import { DaemonState, type StatusReport } from '../observe/state.js';
import { exampleDesired, familyReport } from '../observe/test-support.js';
import { main } from './main.js';
import { formatStatus } from './status.js';
import { loadConfig } from '../config/config.js';
import { desiredState } from '../policy/desired.js';
import { webContainer } from '../../test/support/states.js';

let out = '';
let err = '';
let server: ObserveServer | undefined;

beforeEach(() => {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    err += String(chunk);
    return true;
  });
});
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
  server = undefined;
});

/** A daemon's HTTP side; returns the --listen flag that reaches it. */
async function daemon(ready: boolean): Promise<{ state: DaemonState; listen: string }> {
  const state = new DaemonState({
    version: '1.2.3',
    defaultPolicy: 'allow',
    now: () => Date.UTC(2026, 0, 1),
  });
  const { logger } = memoryLogger();
  const metrics = new DaemonMetrics({
    state,
    logger,
    version: '1.2.3',
    readCounters: () => Promise.reject(new Error()),
  });
  state.dockerConnected();
  state.syncApplied(exampleDesired(), [familyReport(4, true)]);
  state.syncFinished(3, ready ? undefined : new Error('iptables-restore failed'));
  server = await startObserveServer({ host: '127.0.0.1', port: 0 }, { state, metrics, logger });
  return { state, listen: `--listen=127.0.0.1:${server.address.port}` };
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const { logger } = memoryLogger();
  const state = new DaemonState({ version: '1', defaultPolicy: 'allow' });
  const metrics = new DaemonMetrics({
    state,
    logger,
    version: '1',
    readCounters: () => Promise.reject(new Error()),
  });
  const s = await startObserveServer({ host: '127.0.0.1', port: 0 }, { state, metrics, logger });
  await s.close();
  return s.address.port;
}

describe('dockfw status', () => {
  it('prints a table of the containers and exits 0 when the daemon is ready', async () => {
    const { listen } = await daemon(true);
    expect(await main(['status', listen])).toBe(0);
    expect(out).toMatch(
      /^dockfw 1\.2\.3: ready; last sync ok at 2026-01-01T00:00:00.000Z; default policy allow$/m,
    );
    expect(out).toMatch(/^CONTAINER +STATE +ADDRESSES +PORT +DECIDED BY +ALLOW$/m);
    expect(out).toMatch(/^db +closed-invalid-label +172\.17\.0\.3 +80\/tcp +invalid label +none$/m);
    expect(out).toMatch(
      /^web +enforced +172\.17\.0\.2 +80\/tcp +dockfw\.allow +198\.51\.100\.0\/24, 203\.0\.113\.11$/m,
    );
    expect(out).toContain('  db: dockfw.allow: ');
  });

  it('prints the daemon’s JSON with --json', async () => {
    const { state, listen } = await daemon(true);
    expect(await main(['status', '--json', listen])).toBe(0);
    expect(JSON.parse(out)).toEqual(JSON.parse(JSON.stringify(state.report())));
  });

  it('exits 1 and says why when the last sync failed', async () => {
    const { listen } = await daemon(false);
    expect(await main(['status', listen])).toBe(1);
    expect(out).toContain('NOT READY');
    expect(out).toContain('not ready: last sync failed: iptables-restore failed');
  });

  it('exits 2 when nothing answers, or the listen address is off or bad', async () => {
    expect(await main(['status', `--listen=127.0.0.1:${await closedPort()}`])).toBe(2);
    expect(err).toMatch(/no answer from http:\/\/127\.0\.0\.1:\d+\/status/);
    expect(await main(['status', '--listen='])).toBe(2);
    expect(err).toContain('DOCKFW_LISTEN is empty');
    expect(await main(['status', '--listen=nowhere'])).toBe(2);
    expect(await main(['status', '--bogus'])).toBe(2);
  });

  it('documents its exit codes in --help', async () => {
    expect(await main(['status', '--help'])).toBe(0);
    expect(out).toMatch(/Exit status:\n {2}0 .*\n {2}1 [\s\S]*\n {2}2 /);
  });
});

describe('dockfw health', () => {
  it('exits 0 when /healthz answers, even before the daemon is ready', async () => {
    const { listen } = await daemon(false);
    expect(await main(['health', listen])).toBe(0);
  });

  it('exits 1 when nothing answers or DOCKFW_LISTEN is empty', async () => {
    expect(await main(['health', `--listen=127.0.0.1:${await closedPort()}`, '--timeout=1'])).toBe(1);
    expect(await main(['health', '--listen='])).toBe(1);
    expect(await main(['health', '--timeout=soon'])).toBe(2);
  });
});

describe('formatStatus', () => {
  it('names the backend of each family', () => {
    const base = JSON.parse(
      JSON.stringify(new DaemonState({ version: '1', defaultPolicy: 'allow' }).report()),
    ) as StatusReport;
    const text = formatStatus({
      ...base,
      firewall: [
        { family: 4, kind: 'iptables', variant: 'legacy', parent: 'DOCKER-USER' },
        { family: 6, kind: 'nftables', table: 'inet dockfw' },
      ],
    });
    expect(text).toContain(
      'firewall: ipv4 iptables-legacy (DOCKER-USER), ipv6 nftables (table inet dockfw)\n',
    );
  });

  it('lists every path from outside to each published binding and where dockfw judges it', () => {
    const base = JSON.parse(
      JSON.stringify(new DaemonState({ version: '1', defaultPolicy: 'allow' }).report()),
    ) as StatusReport;
    const desired = desiredState(
      {
        containers: [webContainer('203.0.113.10')],
        bridges: ['docker0'],
      },
      loadConfig({}),
    );
    const text = formatStatus({ ...base, containers: desired.containers });
    expect(text).toContain('\npaths from outside (every one judged by dockfw):\n');
    expect(text).toMatch(
      /^web +0\.0\.0\.0:8080\/tcp +IPv4 DNAT → 172\.17\.0\.2:80\/tcp +binding and container address$/m,
    );
    expect(text).toMatch(/^ +\[::\]:8080\/tcp +IPv6 → docker-proxy → 172\.17\.0\.2:80\/tcp .* +binding$/m);
    expect(text).toMatch(
      /^ +172\.17\.0\.2:80\/tcp +IPv4 routed to the container address .* +container address$/m,
    );
  });

  it('lists label keys that look like dockfw’s but are not', () => {
    const base = JSON.parse(
      JSON.stringify(new DaemonState({ version: '1', defaultPolicy: 'allow' }).report()),
    ) as StatusReport;
    const message = 'label "dockfw_allow" is not a dockfw label (did you mean "dockfw.allow"?)';
    const text = formatStatus({
      ...base,
      labelWarnings: [{ container: 'web', label: '"dockfw_allow"', message }],
    });
    expect(text).toContain(
      `\nignored labels (not dockfw labels, though they look like them):\n  web: ${message}\n`,
    );
  });

  it('says so when no container publishes a port', () => {
    const report: StatusReport = {
      version: '1',
      ready: false,
      notReady: ['first sync not done yet'],
      defaultPolicy: 'deny',
      docker: { connected: true },
      lastSync: null,
      lastSuccessfulSync: null,
      firewall: [],
      containers: [],
      labelErrors: [],
    };
    expect(formatStatus(report)).toBe(
      'dockfw 1: NOT READY; no sync yet; default policy deny\n  not ready: first sync not done yet\n\nno running containers with published ports\n',
    );
  });
});
