import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { netnsPath } from './netns.js';
import { isAlive, readPidFile, terminate, waitUntil } from './processes.js';

export type IptablesVariant = 'nft' | 'legacy';

/** Every file and folder of one test host, all below one short temp dir (socket paths < 108 bytes). */
export interface EngineLayout {
  dir: string;
  binDir: string;
  dockerConfig: string;
  dataRoot: string;
  execRoot: string;
  dockerSocket: string;
  dockerPidFile: string;
  dockerLog: string;
  containerdConfig: string;
  containerdSocket: string;
  containerdPidFile: string;
  containerdLog: string;
  containerdNamespace: string;
}

export function engineLayout(dir: string, id: string): EngineLayout {
  return {
    dir,
    binDir: path.join(dir, 'bin'),
    dockerConfig: path.join(dir, 'docker-config'),
    dataRoot: path.join(dir, 'data'),
    execRoot: path.join(dir, 'exec'),
    dockerSocket: path.join(dir, 'docker.sock'),
    dockerPidFile: path.join(dir, 'docker.pid'),
    dockerLog: path.join(dir, 'dockerd.log'),
    containerdConfig: path.join(dir, 'containerd.toml'),
    containerdSocket: path.join(dir, 'containerd.sock'),
    containerdPidFile: path.join(dir, 'containerd.pid'),
    containerdLog: path.join(dir, 'containerd.log'),
    containerdNamespace: `dfw-${id}`,
  };
}

const IPTABLES_TOOLS = [
  'iptables',
  'iptables-save',
  'iptables-restore',
  'ip6tables',
  'ip6tables-save',
  'ip6tables-restore',
];

/** `iptables-save` → `iptables-nft-save`, the name Debian gives each variant. */
function variantBinary(tool: string, variant: IptablesVariant): string {
  const [base, ...rest] = tool.split('-');
  return `/usr/sbin/${[base, variant, ...rest].join('-')}`;
}

/**
 * A bin dir that makes the chosen iptables variant THE iptables for everything
 * started with it first in PATH (the multi-call binaries dispatch on argv[0]).
 */
export async function prepareLayout(
  layout: EngineLayout,
  variant: IptablesVariant,
  composePlugin: string,
): Promise<void> {
  for (const dir of [
    layout.binDir,
    layout.dataRoot,
    layout.execRoot,
    path.join(layout.dockerConfig, 'cli-plugins'),
  ]) {
    await mkdir(dir, { recursive: true });
  }
  for (const tool of IPTABLES_TOOLS) {
    await symlink(variantBinary(tool, variant), path.join(layout.binDir, tool));
  }
  await symlink(composePlugin, path.join(layout.dockerConfig, 'cli-plugins', 'docker-compose'));
  await writeFile(path.join(layout.dockerConfig, 'config.json'), '{}\n');
  // The same settings dockerd writes for a containerd it manages itself, with
  // every path inside this test host's folder.
  await writeFile(
    layout.containerdConfig,
    [
      'version = 2',
      `root = "${path.join(layout.dataRoot, 'containerd')}"`,
      `state = "${path.join(layout.execRoot, 'containerd')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${layout.containerdSocket}"`,
      '[ttrpc]',
      `  address = "${layout.containerdSocket}.ttrpc"`,
      '[debug]',
      '  level = "warn"',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${path.join(layout.dataRoot, 'containerd-opt')}"`,
      '',
    ].join('\n'),
  );
}

export function enginePath(layout: EngineLayout, engineDir: string): string {
  return [
    layout.binDir,
    path.join(engineDir, 'usr/sbin'),
    path.join(engineDir, 'usr/bin'),
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/bin',
  ].join(':');
}

/** Starts `command` inside the namespace, detached, output to `logFile`; returns its pid. */
function spawnInNetns(
  netns: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logFile: string,
): number {
  const log = openSync(logFile, 'a');
  try {
    // nsenter --net does not fork: the pid is the daemon's own.
    const child = spawn('nsenter', [`--net=${netnsPath(netns)}`, '--', command, ...args], {
      detached: true,
      stdio: ['ignore', log, log],
      env,
    });
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

function logTail(file: string): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').split('\n').slice(-25).join('\n');
}

export async function startContainerd(
  layout: EngineLayout,
  netns: string,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const pid = spawnInNetns(
    netns,
    'containerd',
    ['--config', layout.containerdConfig],
    env,
    layout.containerdLog,
  );
  await writeFile(layout.containerdPidFile, `${pid}\n`);
  try {
    await waitUntil(() => existsSync(layout.containerdSocket) || !isAlive(pid), 30_000, 'containerd socket');
  } catch (error) {
    throw new Error(`${String(error)}\ncontainerd log:\n${logTail(layout.containerdLog)}`);
  }
  if (!isAlive(pid)) throw new Error(`containerd exited at start:\n${logTail(layout.containerdLog)}`);
  return pid;
}

export function dockerdArgs(layout: EngineLayout, extra: string[]): string[] {
  return [
    '--data-root',
    layout.dataRoot,
    '--exec-root',
    layout.execRoot,
    '-H',
    `unix://${layout.dockerSocket}`,
    '--pidfile',
    layout.dockerPidFile,
    '--containerd',
    layout.containerdSocket,
    '--containerd-namespace',
    layout.containerdNamespace,
    '--containerd-plugins-namespace',
    `${layout.containerdNamespace}-plugins`,
    ...extra,
  ];
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ socketPath, path: '/_ping', timeout: 1_000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('error', () => resolve(false));
    request.on('timeout', () => {
      request.destroy();
      resolve(false);
    });
  });
}

export async function startDockerd(
  layout: EngineLayout,
  netns: string,
  env: NodeJS.ProcessEnv,
  args: string[],
): Promise<number> {
  const pid = spawnInNetns(netns, 'dockerd', args, env, layout.dockerLog);
  try {
    await waitUntil(
      async () => !isAlive(pid) || (await ping(layout.dockerSocket)),
      60_000,
      'dockerd to answer',
      100,
    );
  } catch (error) {
    throw new Error(`${String(error)}\ndockerd log:\n${logTail(layout.dockerLog)}`);
  }
  if (!isAlive(pid)) throw new Error(`dockerd exited at start:\n${logTail(layout.dockerLog)}`);
  return pid;
}

/** SIGTERM to the pid in the pidfile, then wait for the pidfile to vanish (dockerd removes it last). */
export async function stopDockerd(layout: EngineLayout, knownPid: number | undefined): Promise<void> {
  const pid = readPidFile(layout.dockerPidFile) ?? knownPid;
  if (pid !== undefined) await terminate(pid, 30_000);
  await waitUntil(() => !existsSync(layout.dockerPidFile), 5_000, 'dockerd pidfile to vanish').catch(
    () => undefined,
  );
}

export async function stopContainerd(layout: EngineLayout): Promise<void> {
  const pid = readPidFile(layout.containerdPidFile);
  if (pid !== undefined) await terminate(pid, 10_000);
}
