import { execa } from 'execa';
import { run } from './run.js';
import { CLIENT_ADDRESSES, EXTERNAL_INTERFACE, HOST_ADDRESSES, PREFIX } from './addresses.js';

/** Network namespace paths as `ip netns add` creates them. */
export function netnsPath(name: string): string {
  return `/var/run/netns/${name}`;
}

async function ip(args: string[]): Promise<void> {
  await execa('ip', args);
}

/** Runs a short command inside a namespace (nsenter: no /sys remount, cheaper than `ip netns exec`). */
export async function inNetns(
  netns: string,
  command: string,
  args: string[],
  env: Record<string, string> = {},
  input?: string,
) {
  return run('nsenter', [`--net=${netnsPath(netns)}`, '--', command, ...args], {
    env,
    reject: false,
    ...(input === undefined ? {} : { input }),
  });
}

/**
 * Creates the engine namespace and the client namespace, joined by a veth pair:
 * `ext0` (host side, in the engine namespace) and `eth0` (client side).
 */
export async function createNamespaces(engineNs: string, clientNs: string): Promise<void> {
  await ip(['netns', 'add', engineNs]);
  await ip(['netns', 'add', clientNs]);
  await ip(['-n', engineNs, 'link', 'set', 'lo', 'up']);
  await ip(['-n', clientNs, 'link', 'set', 'lo', 'up']);
  await ip([
    '-n',
    engineNs,
    'link',
    'add',
    EXTERNAL_INTERFACE,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    clientNs,
  ]);

  for (const address of HOST_ADDRESSES.v4) {
    await ip(['-n', engineNs, 'addr', 'add', `${address}/${PREFIX.v4}`, 'dev', EXTERNAL_INTERFACE]);
  }
  for (const address of HOST_ADDRESSES.v6) {
    await ip(['-n', engineNs, 'addr', 'add', `${address}/${PREFIX.v6}`, 'dev', EXTERNAL_INTERFACE, 'nodad']);
  }
  for (const address of CLIENT_ADDRESSES.v4) {
    await ip(['-n', clientNs, 'addr', 'add', `${address}/${PREFIX.v4}`, 'dev', 'eth0']);
  }
  for (const address of CLIENT_ADDRESSES.v6) {
    await ip(['-n', clientNs, 'addr', 'add', `${address}/${PREFIX.v6}`, 'dev', 'eth0', 'nodad']);
  }
  await ip(['-n', engineNs, 'link', 'set', EXTERNAL_INTERFACE, 'up']);
  await ip(['-n', clientNs, 'link', 'set', 'eth0', 'up']);
  // The host is the client's router, so tests can also aim at container addresses directly.
  await ip(['-n', clientNs, 'route', 'add', 'default', 'via', HOST_ADDRESSES.v4[0]]);
  await ip(['-n', clientNs, '-6', 'route', 'add', 'default', 'via', HOST_ADDRESSES.v6[0]]);

  // Forwarding on, in the engine namespace only (sysctls under /proc/sys/net are per namespace).
  const sysctl = await inNetns(engineNs, 'sysctl', [
    '-q',
    '-w',
    'net.ipv4.ip_forward=1',
    'net.ipv6.conf.all.forwarding=1',
  ]);
  if (sysctl.exitCode !== 0) throw new Error(`sysctl in ${engineNs} failed: ${sysctl.stderr}`);
}

/** Deletes a namespace if it exists (deleting the engine side removes the veth pair too). */
export async function deleteNamespace(name: string): Promise<void> {
  await execa('ip', ['netns', 'delete', name], { reject: false });
}

export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await execa('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}
