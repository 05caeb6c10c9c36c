import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { StartedTestContainer } from 'testcontainers';
import { CLIENT_ADDRESSES } from './addresses.js';
import { runWithTestcontainers, TEST_IMAGE, type RunContainerOptions } from './containers.js';
import {
  dockerdArgs,
  engineLayout,
  enginePath,
  prepareLayout,
  startContainerd,
  startDockerd,
  stopContainerd,
  stopDockerd,
  type EngineLayout,
  type IptablesVariant,
} from './engine.js';
import { mountsUnder, unmountAll } from './mounts.js';
import { createNamespaces, deleteNamespace, netnsPath } from './netns.js';
import { httpProbeArgs, probeFrom, type ProbeOptions, type ProbeOutcome, type Protocol } from './probe.js';
import { findProcesses, findProcessesRootedUnder, terminate } from './processes.js';
import { readProvisioned, REPO_ROOT, type EngineVersion } from './provisioned.js';
import { run, type CommandResult } from './run.js';

export interface TestHostOptions {
  engine: EngineVersion;
  iptables: IptablesVariant;
  /** IPv6 firewalling; on 20.10 this adds `--experimental --ip6tables` (28.5 has it on by default). */
  ipv6?: boolean;
  dockerdArgs?: string[];
}

export type Family = 4 | 6;

/** Every test host's folder starts with this; global-setup looks for leftovers by it. */
export const HOST_DIR_PREFIX = '/tmp/dfw-';
export const NETNS_PREFIX = 'dfw-';
/**
 * Set by global-setup for its test run; every host id starts with it, so a run
 * judges (and cleans) only its own hosts when several runs share the machine.
 */
export const RUN_ID_ENV = 'DFW_TEST_RUN';
/** Written into each host's folder so another process can attach to the host (scripts/testhost.sh). */
const HOST_FILE = 'host.json';
/** dockerd and containerd logs of stopped hosts, for a look after a failure. */
export const LOG_DIR = path.join(REPO_ROOT, '.cache', 'test-host-logs');
const KEPT_LOGS = 60;

export interface RunningContainer {
  id: string;
  name: string;
  container: StartedTestContainer;
}

/** A real Docker engine in its own network namespace, with an outside client namespace. */
export class TestHost {
  readonly engineNs: string;
  readonly clientNs: string;
  readonly layout: EngineLayout;
  readonly dockerHost: string;
  private dockerdPid: number | undefined;
  private stopped = false;

  constructor(
    readonly id: string,
    readonly options: TestHostOptions,
    private readonly engineDir: string,
    private readonly composePlugin: string,
  ) {
    this.engineNs = `${NETNS_PREFIX}${id}`;
    this.clientNs = `${NETNS_PREFIX}${id}-c`;
    this.layout = engineLayout(`${HOST_DIR_PREFIX}${id}`, id);
    this.dockerHost = `unix://${this.layout.dockerSocket}`;
  }

  get socket(): string {
    return this.layout.dockerSocket;
  }

  /** Environment of every process in the engine namespace: the chosen iptables first in PATH. */
  get env(): Record<string, string> {
    return { PATH: enginePath(this.layout, this.engineDir) };
  }

  private get dockerdArgs(): string[] {
    const extra = [...(this.options.dockerdArgs ?? [])];
    if (this.options.ipv6 === true && this.options.engine === '20.10') {
      extra.push('--experimental', '--ip6tables');
    }
    return dockerdArgs(this.layout, extra);
  }

  async start(): Promise<void> {
    await createNamespaces(this.engineNs, this.clientNs);
    await prepareLayout(this.layout, this.options.iptables, this.composePlugin);
    await writeFile(
      path.join(this.layout.dir, HOST_FILE),
      `${JSON.stringify({ id: this.id, options: this.options })}\n`,
    );
    const env = { ...this.env, HOME: this.layout.dir };
    await startContainerd(this.layout, this.engineNs, env);
    this.dockerdPid = await startDockerd(this.layout, this.engineNs, env, this.dockerdArgs);
  }

  /** Runs the engine's own docker CLI against this host. Rejects on a non-zero exit. */
  docker(args: string[], options: { reject?: boolean; input?: string } = {}): Promise<CommandResult> {
    return run(path.join(this.engineDir, 'usr/bin/docker'), args, { ...options, env: this.cliEnv });
  }

  private get cliEnv(): Record<string, string> {
    return { DOCKER_HOST: this.dockerHost, DOCKER_CONFIG: this.layout.dockerConfig };
  }

  /** `docker compose …` with the Compose v2 plugin. */
  compose(args: string[], options: { cwd?: string; reject?: boolean } = {}): Promise<CommandResult> {
    return run(path.join(this.engineDir, 'usr/bin/docker'), ['compose', ...args], {
      ...options,
      env: this.cliEnv,
    });
  }

  /** Runs a command in the engine's namespace (never rejects; check exitCode). */
  exec(command: string, args: string[], options: { input?: string } = {}): Promise<CommandResult> {
    return run('nsenter', [`--net=${netnsPath(this.engineNs)}`, '--', command, ...args], {
      ...options,
      env: this.env,
      reject: false,
    });
  }

  private async execOrThrow(command: string, args: string[], input?: string): Promise<string> {
    const result = await this.exec(command, args, input === undefined ? {} : { input });
    if (result.exitCode !== 0) {
      throw new Error(`${command} ${args.join(' ')} failed (${result.exitCode}): ${result.stderr}`);
    }
    return result.stdout;
  }

  /** iptables/ip6tables of the host's variant, with -w. Rejects on failure. */
  iptables(family: Family, args: string[]): Promise<string> {
    return this.execOrThrow(family === 4 ? 'iptables' : 'ip6tables', ['-w', ...args]);
  }

  iptablesSave(family: Family, table?: string): Promise<string> {
    return this.execOrThrow(
      family === 4 ? 'iptables-save' : 'ip6tables-save',
      table === undefined ? [] : ['-t', table],
    );
  }

  iptablesRestore(family: Family, payload: string, args: string[] = ['--noflush', '-w']): Promise<string> {
    return this.execOrThrow(family === 4 ? 'iptables-restore' : 'ip6tables-restore', args, payload);
  }

  nft(args: string[]): Promise<string> {
    return this.execOrThrow('nft', args);
  }

  /**
   * Flushes a chain in the given families; without families, in each family
   * that has the chain (Docker 20.10 has no IPv6 DOCKER-USER).
   */
  async flushChain(chain: string, families?: Family[]): Promise<void> {
    const targets: Family[] = [];
    for (const family of families ?? [4, 6]) {
      const exists =
        (await this.exec(family === 4 ? 'iptables' : 'ip6tables', ['-w', '-n', '-L', chain])).exitCode === 0;
      if (families !== undefined || exists) targets.push(family);
    }
    if (targets.length === 0) throw new Error(`no chain ${chain} in any family`);
    for (const family of targets) await this.iptables(family, ['-F', chain]);
  }

  /** Starts a test-image container (testcontainers); see RunContainerOptions. */
  async runContainer(options: RunContainerOptions): Promise<RunningContainer> {
    const container = await runWithTestcontainers(this.layout.dockerSocket, options);
    return { id: container.getId(), name: options.name, container };
  }

  /** A container's addresses on each network, read fresh (they change across restarts). */
  async containerAddresses(nameOrId: string): Promise<{ v4: string[]; v6: string[] }> {
    const { stdout } = await this.docker([
      'inspect',
      '--format',
      '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}} {{end}}',
      nameOrId,
    ]);
    const all = stdout.split(/\s+/).filter((a) => a !== '');
    return { v4: all.filter((a) => !a.includes(':')), v6: all.filter((a) => a.includes(':')) };
  }

  /** One probe from the client namespace; see probeFrom for what counts as reached. */
  probe(options: ProbeOptions): Promise<ProbeOutcome> {
    return probeFrom(this.clientNs, options);
  }

  /** Probes from several sources at once; answers keyed by source. */
  async probeFromAll(
    sources: readonly string[],
    target: { to: string; port: number; proto?: Protocol; timeoutMs?: number },
  ): Promise<Record<string, ProbeOutcome>> {
    const outcomes = await Promise.all(sources.map((from) => this.probe({ ...target, from })));
    return Object.fromEntries(sources.map((from, i) => [from, outcomes[i] ?? 'blocked']));
  }

  /** The sources of `family` that reach the target, in CLIENT_ADDRESSES order. */
  async reachableFrom(
    target: { to: string; port: number; proto?: Protocol; timeoutMs?: number },
    sources: readonly string[] = target.to.includes(':') ? CLIENT_ADDRESSES.v6 : CLIENT_ADDRESSES.v4,
  ): Promise<string[]> {
    const outcomes = await this.probeFromAll(sources, target);
    return sources.filter((from) => outcomes[from] === 'reached');
  }

  /** A TCP probe from the engine's own namespace (the Docker host itself), no source address. */
  async probeFromEngine(target: { to: string; port: number; timeoutMs?: number }): Promise<ProbeOutcome> {
    const result = await this.exec('curl', httpProbeArgs(target.to, target.port, target.timeoutMs));
    return result.stdout.trim() === '200' ? 'reached' : 'blocked';
  }

  /** A TCP (HTTP) probe from inside a container, with busybox nc. */
  async probeFromContainer(
    container: string,
    target: { to: string; port: number; timeoutMs?: number },
  ): Promise<ProbeOutcome> {
    const seconds = Math.max(1, Math.round((target.timeoutMs ?? 1_000) / 1000));
    const result = await this.docker(
      ['exec', '-i', container, 'nc', '-w', String(seconds), target.to, String(target.port)],
      { reject: false, input: 'GET / HTTP/1.0\r\n\r\n' },
    );
    return /^HTTP\/1\.[01] 200/.test(result.stdout) ? 'reached' : 'blocked';
  }

  /** Stops dockerd like a service manager would, and starts it again with the same arguments. */
  async restartEngine(): Promise<void> {
    await stopDockerd(this.layout, this.dockerdPid);
    this.dockerdPid = await startDockerd(
      this.layout,
      this.engineNs,
      { ...this.env, HOME: this.layout.dir },
      this.dockerdArgs,
    );
  }

  /** Imports the busybox test image (no registry here). */
  async importTestImage(rootfsTar: string): Promise<void> {
    await this.docker(['import', '--change', 'CMD ["/bin/serve"]', rootfsTar, TEST_IMAGE]);
  }

  private async pruneLogs(): Promise<void> {
    const kept = await Promise.all(
      (await readdir(LOG_DIR)).map(async (name) => ({
        name,
        mtime: (await stat(path.join(LOG_DIR, name))).mtimeMs,
      })),
    );
    kept.sort((a, b) => b.mtime - a.mtime);
    for (const old of kept.slice(KEPT_LOGS)) await rm(path.join(LOG_DIR, old.name), { force: true });
  }

  private async keepLogs(): Promise<void> {
    await mkdir(LOG_DIR, { recursive: true });
    for (const log of [this.layout.dockerLog, this.layout.containerdLog]) {
      if (existsSync(log)) await copyFile(log, path.join(LOG_DIR, `${this.id}-${path.basename(log)}`));
    }
    // Keep the newest logs only (best effort: hosts stopping at once prune together).
    await this.pruneLogs().catch(() => undefined);
  }

  /**
   * Tears everything down; safe to call twice and after a failed start. Throws
   * if something could not be removed, so a leak never goes unnoticed.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const problems: string[] = [];
    if (existsSync(this.layout.dockerSocket)) {
      // Removing containers first keeps dockerd's shutdown short.
      const ids = await this.docker(['ps', '-aq'], { reject: false });
      const list = ids.stdout.split('\n').filter((id) => id !== '');
      if (list.length > 0) await this.docker(['rm', '-f', ...list], { reject: false });
    }
    await stopDockerd(this.layout, this.dockerdPid);
    await stopContainerd(this.layout);
    // Normally nothing is left. After a crash: container processes (found by
    // their root file system), then shims (by the socket path only this host uses).
    for (const leftover of await findProcessesRootedUnder(`${this.layout.dir}/`)) {
      await terminate(leftover.pid, 2_000);
    }
    for (const leftover of await findProcesses(this.layout.dir)) {
      await terminate(leftover.pid, 2_000);
    }
    const mounts = await unmountAll(this.layout.dir);
    if (mounts.length > 0) problems.push(`mounts left: ${mounts.join(', ')}`);
    await deleteNamespace(this.clientNs);
    await deleteNamespace(this.engineNs);
    await this.keepLogs().catch(() => undefined);
    if ((await mountsUnder(this.layout.dir)).length === 0) {
      await rm(this.layout.dir, { recursive: true, force: true });
    }
    if (problems.length > 0) throw new Error(`test host ${this.id}: ${problems.join('; ')}`);
  }
}

/** Starts a test host; on any failure during start it tears down what it made. */
export async function startTestHost(options: TestHostOptions): Promise<TestHost> {
  const provisioned = readProvisioned();
  const run = process.env[RUN_ID_ENV] ?? randomBytes(2).toString('hex');
  const id = `${run}${randomBytes(2).toString('hex')}`;
  const host = new TestHost(id, options, provisioned.engines[options.engine], provisioned.composePlugin);
  try {
    await host.start();
    await host.importTestImage(provisioned.busyboxRootfs);
  } catch (error) {
    await host.stop().catch(() => undefined);
    throw error;
  }
  return host;
}

/** Takes over a host another process started (by its id), e.g. to stop it. */
export async function attachTestHost(id: string): Promise<TestHost> {
  if (!/^[0-9a-f]+$/.test(id)) throw new Error(`bad test host id ${id}`);
  const provisioned = readProvisioned();
  const saved = JSON.parse(await readFile(`${HOST_DIR_PREFIX}${id}/${HOST_FILE}`, 'utf8')) as {
    options: TestHostOptions;
  };
  return new TestHost(
    id,
    saved.options,
    provisioned.engines[saved.options.engine],
    provisioned.composePlugin,
  );
}
