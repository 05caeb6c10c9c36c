import { describe, expect, it } from 'vitest';
import type { FamilyReport } from '../backends/firewall.js';
import { defaultConfig } from '../config/config.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import type { DesiredState } from '../policy/desired.js';
import type { FirewallSync as Firewall, ReconcileOptions } from '../backends/firewall.js';
import { ContainerCache, LIST_AFTER_EVENTS } from '../docker/container-cache.js';
import { createSync, DEEP_CHECK_EVERY, DockerUnavailableError } from './sync.js';

const ID = (c: string) => c.repeat(64);

class RecordingFirewall implements Firewall {
  readonly seen: DesiredState[] = [];
  readonly options: (ReconcileOptions | undefined)[] = [];
  written = false;
  desiredChanged = true;
  /** Called as each reconcile starts. */
  onReconcile: () => void = () => undefined;
  failNext: Error | undefined;
  afterReported?: () => Promise<void>;
  reconcile(desired: DesiredState, options?: ReconcileOptions): Promise<FamilyReport[]> {
    this.seen.push(desired);
    this.options.push(options);
    this.onReconcile();
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure !== undefined) return Promise.reject(failure);
    const drift = {
      missing: ['DOCKFW-IN -j X'],
      unexpected: [],
      reordered: false,
      structural: [],
    };
    return Promise.resolve([
      {
        family: 4,
        placement: { kind: 'iptables', variant: 'nft', parent: 'DOCKER-USER' },
        drift,
        written: this.written,
        desiredChanged: this.desiredChanged,
      },
    ]);
  }
}

/** An engine whose list answers only once something opens the gate (here: the firewall, as a reconcile starts). */
class GatedDocker extends FakeDockerClient {
  private gate: Promise<void> | undefined;
  open: () => void = () => undefined;
  arm(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  override async listContainers() {
    const gate = this.gate;
    this.gate = undefined;
    if (gate !== undefined) await gate;
    return super.listContainers();
  }
}

/** A synced `web` container on a cache that follows a stream (with the ruleset watch up). */
async function started<D extends FakeDockerClient>(docker: D) {
  docker.containers.set(ID('1'), inspectJson({ id: ID('1'), name: 'web' }));
  const firewall = new RecordingFirewall();
  const cache = new ContainerCache(docker);
  cache.streamUp();
  const sync = createSync({
    docker,
    config: defaultConfig(),
    firewall,
    logger: memoryLogger().logger,
    cache,
    kernelWatched: () => true,
  });
  await sync(new Set(['startup'] as const));
  return { docker, firewall, cache, sync };
}

function setup() {
  const docker = new FakeDockerClient();
  const firewall = new RecordingFirewall();
  const { logger, records } = memoryLogger();
  const sync = createSync({ docker, config: defaultConfig(), firewall, logger });
  return { docker, firewall, records, sync };
}

const once = new Set(['event'] as const);

describe('createSync', () => {
  it('a periodic check is light (the cache, the kernel by its headers) but every DEEP_CHECK_EVERY-th, and after any full read', async () => {
    const { docker, firewall, sync } = await started(new FakeDockerClient());
    const periodic = new Set(['periodic'] as const);
    const inspects = (): number => docker.calls.filter((c) => c.startsWith('inspect')).length;
    const kinds: string[] = [];
    for (let i = 0; i < 2 * DEEP_CHECK_EVERY; i++) {
      docker.calls.length = 0;
      await sync(periodic);
      const light = firewall.options.at(-1)?.periodic?.watched === true;
      kinds.push(light && inspects() === 0 ? 'light' : !light && inspects() === 1 ? 'deep' : 'mixed');
    }
    const round = [...Array<string>(DEEP_CHECK_EVERY - 1).fill('light'), 'deep'];
    expect(kinds).toEqual([...round, ...round]);
    // A watch sync reads the kernel whole but the engine by its list only.
    docker.calls.length = 0;
    await sync(new Set(['watch'] as const));
    expect(firewall.options.at(-1)?.periodic).toBeUndefined();
    expect(inspects()).toBe(0);
    // A reconnect reads everything, and starts the count again.
    for (let i = 0; i < DEEP_CHECK_EVERY - 2; i++) await sync(periodic);
    docker.calls.length = 0;
    await sync(new Set(['reconnect'] as const));
    expect(inspects()).toBe(1);
    for (let i = 0; i < DEEP_CHECK_EVERY - 1; i++) {
      await sync(periodic);
      expect(firewall.options.at(-1)?.periodic).toEqual({ watched: true });
    }
  });

  it('a light check holds the kernel to the last sync’s state, lists the engine only once enough events came that one may have been lost, and writes what the list shows changed as after an event', async () => {
    const { docker, firewall, cache, sync } = await started(new GatedDocker());
    firewall.onReconcile = () => docker.open();
    const periodic = new Set(['periodic'] as const);
    // The first check after connecting lists (the startup list may predate the subscription).
    docker.calls.length = 0;
    await sync(periodic);
    expect(docker.calls).toContain('list');
    firewall.seen.splice(1);
    firewall.options.splice(1);
    const first = firewall.seen[0];
    // Fewer events than the engine's queue holds since the list: the engine is not asked anything.
    for (let i = 0; i < LIST_AFTER_EVENTS - 1; i++) cache.delivered();
    docker.calls.length = 0;
    await sync(periodic);
    expect(docker.calls).toEqual([]);
    expect(firewall.seen).toEqual([first, first]);
    expect(firewall.options[1]).toEqual({ periodic: { watched: true } });
    // A lost event among enough events: a container the cache never heard of shows in the list.
    cache.delivered();
    docker.containers.set(ID('2'), inspectJson({ id: ID('2'), name: 'db', ipv4: '172.17.0.3' }));
    // The list waits for the kernel check to start: a check that listed first would never finish.
    docker.arm();
    await sync(periodic);
    expect(docker.calls).toContain('list');
    expect(firewall.seen).toHaveLength(4);
    expect(firewall.seen[2]).toBe(first);
    expect(firewall.options.slice(2)).toEqual([{ periodic: { watched: true } }, { trustLastSync: true }]);
    expect(firewall.seen[3]?.containers.map((c) => c.name)).toEqual(['db', 'web']);
    // The list started the count again; the next check holds the kernel to the newest state.
    docker.calls.length = 0;
    await sync(periodic);
    expect(docker.calls).toEqual([]);
    expect(firewall.seen[4]).toBe(firewall.seen[3]);
    expect(firewall.seen).toHaveLength(5);
  });

  it('a periodic check merged with a watch sync counts toward the deep check: it is never put off', async () => {
    const { docker, sync } = await started(new FakeDockerClient());
    const merged = new Set(['periodic', 'watch'] as const);
    const inspects = (): number => docker.calls.filter((c) => c.startsWith('inspect')).length;
    const deep: boolean[] = [];
    for (let i = 0; i < DEEP_CHECK_EVERY; i++) {
      docker.calls.length = 0;
      await sync(merged);
      deep.push(inspects() > 0);
    }
    expect(deep).toEqual([...Array<boolean>(DEEP_CHECK_EVERY - 1).fill(false), true]);
  });

  it('while the cache cannot vouch for itself (stream down) every read is whole, and the kernel still gets its deep read every DEEP_CHECK_EVERY-th check', async () => {
    const { cache, firewall, sync } = await started(new FakeDockerClient());
    cache.streamDown();
    const kernelLight: boolean[] = [];
    for (let i = 0; i < DEEP_CHECK_EVERY; i++) {
      await sync(new Set(['periodic'] as const));
      kernelLight.push(firewall.options.at(-1)?.periodic !== undefined);
    }
    expect(kernelLight).toEqual([...Array<boolean>(DEEP_CHECK_EVERY - 1).fill(true), false]);
  });

  for (const check of ['periodic', 'watch'] as const) {
    it(`a ${check} check with an event merged in writes the event's change first, as after events alone, then checks the new state`, async () => {
      const { docker, firewall, cache, sync } = await started(new FakeDockerClient());
      docker.containers.set(ID('2'), inspectJson({ id: ID('2'), name: 'db', ipv4: '172.17.0.3' }));
      cache.observe({
        type: 'container',
        action: 'start',
        actorId: ID('2'),
        containerId: ID('2'),
        name: 'db',
      });
      await sync(new Set([check, 'event'] as const));
      // The kernel is never held to the old state first.
      expect(firewall.seen.map((d) => d.containers.map((c) => c.name))).toEqual([
        ['web'],
        ['db', 'web'],
        ['db', 'web'],
      ]);
      expect(firewall.options[1]).toEqual({ trustLastSync: true });
      expect(firewall.options[2]?.trustLastSync).toBe(false);
      expect(firewall.options[2]?.periodic !== undefined).toBe(check === 'periodic');
    });
  }

  it('a check merged with a reconnect (the engine may have changed whole) reads and compares once', async () => {
    const { firewall, sync } = await started(new FakeDockerClient());
    await sync(new Set(['reconnect', 'event', 'watch'] as const));
    expect(firewall.seen).toHaveLength(2);
    expect(firewall.options[1]?.trustLastSync).toBe(false);
  });

  it('a light check that fails on either side fails the sync; the next check reads the engine first', async () => {
    const { docker, firewall, cache, sync } = await started(new FakeDockerClient());
    const periodic = new Set(['periodic'] as const);
    for (let i = 0; i < LIST_AFTER_EVENTS; i++) cache.delivered();
    docker.reachable = false;
    await expect(sync(periodic)).rejects.toBeInstanceOf(DockerUnavailableError);
    // The kernel was still held to the last state meanwhile.
    expect(firewall.seen).toHaveLength(2);
    docker.reachable = true;
    docker.calls.length = 0;
    let callsBefore = 0;
    firewall.onReconcile = () => (callsBefore = docker.calls.length);
    await sync(periodic);
    expect(firewall.seen).toHaveLength(3);
    // No state vouched for: the engine was read whole before the firewall was asked anything.
    expect(docker.calls.slice(0, callsBefore)).toEqual(
      expect.arrayContaining(['list', `inspect ${ID('1').slice(0, 12)}`]),
    );
    firewall.failNext = new Error('iptables-nft-save: exit 4');
    await expect(sync(periodic)).rejects.toThrow('iptables-nft-save: exit 4');
    expect(firewall.seen).toHaveLength(4);
  });

  it('hands the firewall the desired state of a fresh list', async () => {
    const { docker, firewall, sync } = setup();
    docker.containers.set(
      ID('1'),
      inspectJson({ id: ID('1'), name: 'web', labels: { 'dockfw.allow': '203.0.113.5' } }),
    );
    await sync(once);
    docker.containers.set(ID('2'), inspectJson({ id: ID('2'), name: 'db', ipv4: '172.17.0.3' }));
    await sync(once);
    expect(firewall.seen.map((d) => d.containers.map((c) => c.name))).toEqual([['web'], ['db', 'web']]);
  });

  it('logs an invalid label once when it appears, again only after it went away and came back', async () => {
    const { docker, records, sync } = setup();
    const bad = inspectJson({ id: ID('1'), name: 'web', labels: { 'dockfw.allow': '203.0.113.0/33' } });
    const warnings = () => records.filter((r) => r.msg === 'invalid dockfw label: container closed');
    docker.containers.set(ID('1'), bad);
    await sync(once);
    await sync(once);
    await sync(once);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ container: 'web', label: 'dockfw.allow' });
    docker.containers.delete(ID('1'));
    await sync(once);
    docker.containers.set(ID('1'), bad);
    await sync(once);
    expect(warnings()).toHaveLength(2);
  });

  it('warns once about a label key that looks like dockfw’s but is not', async () => {
    const { docker, records, sync } = setup();
    const msg = 'label looks like a dockfw label but is not: ignored';
    docker.containers.set(
      ID('1'),
      inspectJson({ id: ID('1'), name: 'web', labels: { 'DOCKFW.ALLOW': 'none' } }),
    );
    await sync(once);
    await sync(once);
    expect(records.filter((r) => r.msg === msg)).toEqual([
      expect.objectContaining({
        level: 40,
        container: 'web',
        label: '"DOCKFW.ALLOW"',
        problem:
          'label "DOCKFW.ALLOW" is not a dockfw label (keys are case-sensitive: did you mean "dockfw.allow"?)',
      }),
    ]);
  });

  it('wraps an unreachable engine in DockerUnavailableError and leaves the firewall alone', async () => {
    const { docker, firewall, sync } = setup();
    docker.reachable = false;
    const error = await sync(once).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DockerUnavailableError);
    expect((error as DockerUnavailableError).connectionLost).toBe(true);
    expect(
      new DockerUnavailableError(
        Object.assign(new Error('(HTTP code 500) server error'), { statusCode: 500 }),
      ).connectionLost,
    ).toBe(false);
    expect(firewall.seen).toHaveLength(0);
  });

  it('reports a write the desired state did not ask for as drift, and the others as applied', async () => {
    const { firewall, records, sync } = setup();
    firewall.written = true;
    await sync(new Set(['event']));
    firewall.desiredChanged = false;
    await sync(new Set(['periodic']));
    expect(records.filter((r) => r.msg === 'rules applied')).toHaveLength(1);
    const drift = records.filter((r) => r.msg === 'drift found: re-applied the rules');
    expect(drift).toHaveLength(1);
    expect(drift[0]).toMatchObject({ level: 40, missing: ['DOCKFW-IN -j X'], reasons: ['periodic'] });
  });

  it('tells the firewall a sync is over only once its reports are logged, also a failed one (a write may have landed before the failure)', async () => {
    const { firewall, records, sync } = setup();
    firewall.written = true;
    firewall.desiredChanged = false;
    const loggedBefore: number[] = [];
    firewall.afterReported = () => {
      loggedBefore.push(records.filter((r) => r.msg === 'drift found: re-applied the rules').length);
      return Promise.resolve();
    };
    await sync(new Set(['watch']));
    expect(loggedBefore).toEqual([1]);
    firewall.failNext = new Error('nft: busy');
    await expect(sync(new Set(['watch']))).rejects.toThrow('nft: busy');
    expect(loggedBefore).toEqual([1, 1]);
    // Its own failure is logged, never the sync's.
    firewall.afterReported = () => Promise.reject(new Error('conntrack: gone'));
    await sync(new Set(['watch']));
    expect(records.filter((r) => r.error === 'conntrack: gone')).toHaveLength(1);
  });
});
