/**
 * The shipped deployment files, for real: an image assembled without a registry
 * (scripts/build-image.sh), compose.example.yml brought up with `docker compose`,
 * then compose.swarm.yml as a global service on a single-node Swarm. Outside
 * probes must see exactly what the example services' labels say.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ADDRESSES, startTestHost, TEST_IMAGE, type TestHost } from '../host/index.js';
import { readProvisioned, REPO_ROOT } from '../host/provisioned.js';
import { run } from '../host/run.js';

const IMAGE = 'dockfw:e2e';
const HOST_A = '203.0.113.1';
const ALL_V4 = [...CLIENT_ADDRESSES.v4];

interface ContainerFacts {
  HostConfig: {
    CapAdd: string[] | null;
    CapDrop: string[] | null;
    ReadonlyRootfs: boolean;
    NetworkMode: string;
  };
  Config: { Labels: Record<string, string>; Healthcheck?: { Test: string[] } };
  State: { Health?: { Status: string } };
}

interface StatusJson {
  ready: boolean;
  containers: { name: string; state: string; ports: { port: number; allow: string }[] }[];
}

describe('deployment files on Docker 28.5.2 (iptables-nft)', () => {
  let host: TestHost;
  let env: Record<string, string>;
  let docker: (args: string[]) => Promise<string>;

  async function waitFor<T>(
    what: string,
    read: () => Promise<T>,
    ok: (value: T) => boolean,
    timeoutMs = 60_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await read().catch(() => undefined);
      if (value !== undefined && ok(value)) return value;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  async function inspect(name: string): Promise<ContainerFacts> {
    const [facts] = JSON.parse(await docker(['inspect', name])) as ContainerFacts[];
    if (facts === undefined) throw new Error(`no container ${name}`);
    return facts;
  }

  /** The single container of a Swarm service (its name is generated). */
  async function taskContainer(service: string): Promise<string> {
    return waitFor(
      `a running task of ${service}`,
      async () =>
        (await docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).trim(),
      (id) => /^[0-9a-f]+$/.test(id),
    );
  }

  async function readyz(): Promise<number> {
    const result = await host.exec('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-m',
      '3',
      'http://127.0.0.1:9811/readyz',
    ]);
    return Number(result.stdout.trim());
  }

  async function statusFrom(container: string): Promise<StatusJson> {
    return JSON.parse(
      await docker(['exec', container, 'node', 'dist/cli/main.js', 'status', '--json']),
    ) as StatusJson;
  }

  beforeAll(async () => {
    host = await startTestHost({ engine: '28.5', iptables: 'nft' });
    const cli = path.join(readProvisioned().engines['28.5'], 'usr/bin/docker');
    env = {
      DOCKER_HOST: host.dockerHost,
      DOCKER_CONFIG: host.layout.dockerConfig,
      DOCKER_SOCKET: host.socket,
      DOCKFW_IMAGE: IMAGE,
      WEB_IMAGE: TEST_IMAGE,
      ADMIN_IMAGE: TEST_IMAGE,
      DB_IMAGE: TEST_IMAGE,
    };
    docker = async (args) => (await run(cli, args, { env, cwd: REPO_ROOT })).stdout;
    await run('bash', [path.join(REPO_ROOT, 'scripts/build-image.sh'), IMAGE], {
      env: { ...env, DOCKER: cli, DOCKFW_ROOTFS_CACHE: path.join(REPO_ROOT, '.cache', 'dockfw-image') },
    });
  });

  afterAll(async () => {
    await docker?.(['swarm', 'leave', '--force']).catch(() => undefined);
    await host?.stop();
  });

  it('the built image carries the OCI labels, a HEALTHCHECK running `dockfw health`, and its entry point', async () => {
    const [image] = JSON.parse(await docker(['image', 'inspect', IMAGE])) as {
      Config: {
        Labels: Record<string, string>;
        Healthcheck: { Test: string[] };
        Entrypoint: string[];
        Cmd: string[];
      };
    }[];
    expect(image?.Config.Labels['org.opencontainers.image.title']).toBe('dockfw');
    expect(image?.Config.Healthcheck.Test).toEqual(['CMD', 'node', 'dist/cli/main.js', 'health']);
    expect(image?.Config.Entrypoint).toEqual(['node', 'dist/cli/main.js']);
    expect(image?.Config.Cmd).toEqual(['run']);
  });

  it('docker compose up of compose.example.yml: the example services get exactly what their labels say', async () => {
    // The test image serves the container ports its SERVE_TCP names.
    const override = path.join(host.layout.dir, 'compose.override.yml');
    await writeFile(
      override,
      "services:\n  admin:\n    environment: { SERVE_TCP: '80 9100' }\n  db:\n    environment: { SERVE_TCP: '5432' }\n",
    );
    await docker([
      'compose',
      '-p',
      'ex',
      '-f',
      'compose.example.yml',
      '-f',
      override,
      'up',
      '-d',
      '--quiet-pull',
    ]);
    await waitFor('dockfw to be ready', readyz, (code) => code === 200);

    const [web, admin, adminMetrics, db] = await Promise.all([
      host.reachableFrom({ to: HOST_A, port: 8080 }),
      host.reachableFrom({ to: HOST_A, port: 8443 }),
      host.reachableFrom({ to: HOST_A, port: 9100 }),
      host.reachableFrom({ to: HOST_A, port: 5432 }),
    ]);
    expect(web).toEqual(['203.0.113.11', '198.51.100.10', '198.51.100.11']);
    expect(admin).toEqual(['203.0.113.10', '203.0.113.11', '203.0.113.12']);
    expect(adminMetrics).toEqual(ALL_V4);
    expect(db).toEqual([]);
    // Closed to the outside only: the host itself still reaches the database.
    expect(await host.probeFromEngine({ to: HOST_A, port: 5432 })).toBe('reached');
  });

  it('the compose sidecar runs with host networking, NET_ADMIN and NET_RAW only, a read-only root, and turns healthy', async () => {
    const facts = await waitFor(
      'a healthy dockfw',
      () => inspect('ex-dockfw-1'),
      (f) => f.State.Health?.Status === 'healthy',
    );
    expect(facts.HostConfig).toMatchObject({ NetworkMode: 'host', ReadonlyRootfs: true, CapDrop: ['ALL'] });
    expect([...(facts.HostConfig.CapAdd ?? [])].sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    const status = await statusFrom('ex-dockfw-1');
    expect(status.ready).toBe(true);
    expect(status.containers.map((c) => [c.name, c.state])).toEqual([
      ['ex-admin-1', 'enforced'],
      ['ex-db-1', 'enforced'],
      ['ex-web-1', 'enforced'],
    ]);
    await docker(['compose', '-p', 'ex', '-f', 'compose.example.yml', 'down', '-t', '1']);
  });

  it('compose.swarm.yml on a single-node Swarm: one dockfw per node enforces a global service’s labels', async () => {
    await docker(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
    await docker(['network', 'create', '--driver', 'bridge', '--scope', 'swarm', 'dockfw-web']);
    await docker([
      'stack',
      'deploy',
      '--detach=true',
      '--resolve-image',
      'never',
      '-c',
      'compose.swarm.yml',
      'fw',
    ]);
    const sidecar = await taskContainer('fw_dockfw');
    const web = await taskContainer('fw_web');
    await waitFor('dockfw to be ready', readyz, (code) => code === 200);
    await waitFor(
      'the web task in dockfw status',
      () => statusFrom(sidecar),
      (s) => s.containers.some((c) => c.name.startsWith('fw_web.') && c.state === 'enforced'),
    );
    expect(await host.reachableFrom({ to: HOST_A, port: 8080 })).toEqual([
      '203.0.113.11',
      '198.51.100.10',
      '198.51.100.11',
    ]);
    const facts = await inspect(sidecar);
    expect(facts.HostConfig).toMatchObject({ NetworkMode: 'host', ReadonlyRootfs: true, CapDrop: ['ALL'] });
    expect([...(facts.HostConfig.CapAdd ?? [])].sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect((await inspect(web)).Config.Labels['dockfw.allow']).toBe('203.0.113.11, 198.51.100.0/24');
  });

  it('a Swarm task on an overlay network (published through docker_gwbridge) answers its allowed source only', async () => {
    const stack = path.join(host.layout.dir, 'overlay.yml');
    await writeFile(
      stack,
      [
        'services:',
        '  ov:',
        `    image: ${TEST_IMAGE}`,
        '    ports: [{ target: 80, published: 8090, protocol: tcp, mode: host }]',
        "    labels: { dockfw.allow: '203.0.113.11' }",
        '',
      ].join('\n'),
    );
    await docker(['stack', 'deploy', '--detach=true', '--resolve-image', 'never', '-c', stack, 'ov']);
    const sidecar = await taskContainer('fw_dockfw');
    await taskContainer('ov_ov');
    await waitFor(
      'the overlay task in dockfw status',
      () => statusFrom(sidecar),
      (s) => s.containers.some((c) => c.name.startsWith('ov_ov.')),
    );
    // Reached through docker_gwbridge: the allowed source only (its gateway address is judged).
    const reached = await waitFor(
      'the allowed source through docker_gwbridge',
      () => host.reachableFrom({ to: HOST_A, port: 8090 }),
      (r) => r.includes('203.0.113.11'),
    );
    expect(reached).toEqual(['203.0.113.11']);
  });
});
