import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Versions the test hosts can run; each maps to a folder under .cache/engines/. */
export type EngineVersion = '28.5' | '20.10';

/** What scripts/provision.sh left behind (written to .cache/provisioned.json). */
export interface Provisioned {
  /** Engine folder holding usr/sbin/dockerd and usr/bin/docker, per version. */
  engines: Record<EngineVersion, string>;
  composePlugin: string;
  busyboxRootfs: string;
}

/** The checkout this file belongs to (also when compiled elsewhere, as scripts/testhost.sh does). */
function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'scripts', 'provision.sh'))) {
      return dir;
    }
    if (dir === path.dirname(dir)) throw new Error(`no repository above ${start}`);
  }
}

export const REPO_ROOT = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));
const SUMMARY = path.join(REPO_ROOT, '.cache', 'provisioned.json');

/** Reads the provisioning summary, failing with the command that fixes it. */
export function readProvisioned(): Provisioned {
  const hint = 'run `scripts/provision.sh` as root first (see docs/test-host.md)';
  if (!existsSync(SUMMARY)) {
    throw new Error(`test host not provisioned: ${SUMMARY} is missing; ${hint}`);
  }
  const summary = JSON.parse(readFileSync(SUMMARY, 'utf8')) as Provisioned;
  const required = [
    path.join(summary.engines['28.5'], 'usr/sbin/dockerd'),
    path.join(summary.engines['28.5'], 'usr/bin/docker'),
    path.join(summary.engines['20.10'], 'usr/sbin/dockerd'),
    path.join(summary.engines['20.10'], 'usr/bin/docker'),
    summary.composePlugin,
    summary.busyboxRootfs,
    '/usr/bin/containerd',
    '/usr/sbin/iptables-nft',
    '/usr/sbin/iptables-legacy',
    '/usr/bin/socat',
  ];
  const missing = required.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(`test host provisioning incomplete, missing ${missing.join(', ')}; ${hint}`);
  }
  return summary;
}
