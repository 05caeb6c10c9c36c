// The informer wired in: the event watch feeds the container cache, the sync
// reads it; what reaches the firewall is what a fresh list would give.
import { describe, expect, it } from 'vitest';
import type { FamilyReport } from '../backends/firewall.js';
import { defaultConfig } from '../config/config.js';
import { ContainerCache, LIST_AFTER_EVENTS } from '../docker/container-cache.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import type { DesiredState } from '../policy/desired.js';
import { Daemon } from './daemon.js';
import { FakeClock } from './fake-clock.js';
import { createSync, DEEP_CHECK_EVERY, needsFullRead } from './sync.js';

const ID = (c: string) => c.repeat(64);

class RecordingFirewall {
  readonly seen: DesiredState[] = [];
  reconcile(desired: DesiredState): Promise<FamilyReport[]> {
    this.seen.push(desired);
    return Promise.resolve([]);
  }
  get last(): DesiredState | undefined {
    return this.seen[this.seen.length - 1];
  }
}

const allowed = (desired: DesiredState | undefined) =>
  (desired?.rules ?? []).map((r) => `${r.containerName} ${r.address}:${r.portFrom}`);

function web(c: string, name: string, ipv4: string) {
  return inspectJson({ id: ID(c), name, ipv4, labels: { 'dockfw.allow': '203.0.113.10' } });
}

describe('needsFullRead', () => {
  it('lets only syncs asked for by events alone read just what they named', () => {
    expect(needsFullRead(new Set(['event']))).toBe(false);
    for (const other of ['startup', 'reconnect', 'periodic', 'retry', 'watch'] as const) {
      expect(needsFullRead(new Set([other]))).toBe(true);
      expect(needsFullRead(new Set(['event', other]))).toBe(true);
    }
  });
});

/** `web` on 172.17.0.2, synced at startup by a cache that follows a stream. */
async function webSynced() {
  const docker = new FakeDockerClient();
  docker.containers.set(ID('a'), web('a', 'web', '172.17.0.2'));
  const cache = new ContainerCache(docker);
  const firewall = new RecordingFirewall();
  const sync = createSync({
    docker,
    config: defaultConfig(),
    firewall,
    logger: memoryLogger().logger,
    cache,
  });
  cache.streamUp();
  await sync(new Set(['startup']));
  // The first check after connecting lists once more (the startup list may predate the subscription).
  await sync(new Set(['periodic']));
  return { docker, cache, firewall, sync };
}

describe('sync over the container cache', () => {
  it('a lost event: stale on event syncs and light checks, repaired by the list once enough events came that one may have been lost, or by the deep check', async () => {
    const { docker, cache, firewall, sync } = await webSynced();
    docker.containers.set(ID('b'), web('b', 'db', '172.17.0.3'));
    docker.containers.delete(ID('a'));
    // The start and destroy events were lost; an unrelated one arrives.
    docker.containers.set(ID('c'), web('c', 'cache', '172.17.0.4'));
    cache.observe({
      type: 'container',
      action: 'start',
      actorId: ID('c'),
      containerId: ID('c'),
      name: 'cache',
    });
    await sync(new Set(['event']));
    const stale = ['cache 172.17.0.4:80', 'web 172.17.0.2:80'];
    const fresh = ['cache 172.17.0.4:80', 'db 172.17.0.3:80'];
    expect(allowed(firewall.last)).toEqual(stale);
    // Too few events for the engine to have dropped one: the cache vouches for itself.
    await sync(new Set(['periodic']));
    expect(allowed(firewall.last)).toEqual(stale);
    for (let i = 0; i < LIST_AFTER_EVENTS; i++) cache.delivered();
    await sync(new Set(['periodic']));
    expect(allowed(firewall.last)).toEqual(fresh);
  });

  it('a lost event with few events around it: repaired by the deep check (every DEEP_CHECK_EVERY-th)', async () => {
    const { docker, firewall, sync } = await webSynced();
    docker.containers.delete(ID('a'));
    docker.containers.set(ID('b'), web('b', 'db', '172.17.0.2'));
    const seen: string[][] = [];
    for (let i = 1; i < DEEP_CHECK_EVERY; i++) {
      await sync(new Set(['periodic']));
      seen.push(allowed(firewall.last));
    }
    expect(seen).toEqual([
      ...Array.from({ length: DEEP_CHECK_EVERY - 2 }, () => ['web 172.17.0.2:80']),
      ['db 172.17.0.2:80'],
    ]);
  });
});

function daemonSetup() {
  const docker = new FakeDockerClient();
  docker.containers.set(ID('a'), web('a', 'web', '172.17.0.2'));
  const clock = new FakeClock();
  const firewall = new RecordingFirewall();
  const { logger } = memoryLogger();
  const daemon = new Daemon({ config: defaultConfig(), docker, firewall, logger, clock });
  return { docker, clock, firewall, daemon };
}

describe('Daemon with the informer', () => {
  it('lists at startup, then inspects only what each event names', async () => {
    const { docker, clock, firewall, daemon } = daemonSetup();
    daemon.start();
    await clock.advance(200);
    expect(docker.calls).toContain('list');
    expect(allowed(firewall.last)).toEqual(['web 172.17.0.2:80']);
    docker.calls.length = 0;
    docker.containers.set(ID('b'), web('b', 'db', '172.17.0.3'));
    docker.emit({ type: 'container', action: 'create', actorId: ID('b'), containerId: ID('b'), name: 'db' });
    docker.emit({ type: 'container', action: 'start', actorId: ID('b'), containerId: ID('b'), name: 'db' });
    await clock.advance(500);
    expect(allowed(firewall.last)).toEqual(['db 172.17.0.3:80', 'web 172.17.0.2:80']);
    expect(docker.calls).not.toContain('list');
    expect(docker.calls.filter((c) => c.startsWith('inspect '))).toEqual(
      docker.calls.filter((c) => c === `inspect ${ID('b').slice(0, 12)}`),
    );
    docker.vanishing.add(ID('a'));
    docker.emit({
      type: 'container',
      action: 'destroy',
      actorId: ID('a'),
      containerId: ID('a'),
      name: 'web',
    });
    await clock.advance(500);
    expect(allowed(firewall.last)).toEqual(['db 172.17.0.3:80']);
    await daemon.stop();
  });

  it('the engine restarting under the cache: the reconnect lists again and drops what vanished', async () => {
    const { docker, clock, firewall, daemon } = daemonSetup();
    docker.containers.set(ID('b'), web('b', 'db', '172.17.0.3'));
    daemon.start();
    await clock.advance(200);
    expect(allowed(firewall.last)).toEqual(['db 172.17.0.3:80', 'web 172.17.0.2:80']);
    // The engine goes down; it comes back without web, db at another address, and a new one.
    docker.reachable = false;
    docker.endStreams();
    await clock.advance(100);
    docker.containers.delete(ID('a'));
    docker.containers.set(ID('b'), web('b', 'db', '172.17.0.9'));
    docker.containers.set(ID('c'), web('c', 'cache', '172.17.0.4'));
    docker.reachable = true;
    docker.calls.length = 0;
    await clock.advance(6_000);
    expect(docker.calls).toContain('list');
    expect(allowed(firewall.last)).toEqual(['cache 172.17.0.4:80', 'db 172.17.0.9:80']);
    await daemon.stop();
  });
});
