import { describe, expect, it } from 'vitest';
import { ContainerCache, LIST_AFTER_EVENTS } from '../docker/container-cache.js';
import { FakeDockerClient } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import { DockerWatch } from './docker-watch.js';
import { FakeClock } from './fake-clock.js';
import type { RequestOptions, SyncReason } from './runner.js';

function setup() {
  const docker = new FakeDockerClient();
  const clock = new FakeClock();
  const { logger, records } = memoryLogger();
  const requests: { reason: SyncReason; resetBackoff: boolean; callsBefore: string[] }[] = [];
  const runner = {
    request: (reason: SyncReason, options: RequestOptions = {}) =>
      requests.push({ reason, resetBackoff: options.resetBackoff ?? false, callsBefore: [...docker.calls] }),
  };
  const watch = new DockerWatch({ docker, runner, logger, clock, retryInitialMs: 100, retryMaxMs: 400 });
  return { docker, clock, records, requests, watch };
}

const event = (type: string, action: string) => ({
  type,
  action,
  actorId: 'c',
  containerId: 'c',
  name: undefined,
});

describe('DockerWatch', () => {
  it('subscribes before asking for the first sync, then asks once per relevant event', async () => {
    const { docker, clock, requests, watch } = setup();
    watch.start();
    await clock.advance(0);
    expect(requests).toEqual([{ reason: 'startup', resetBackoff: true, callsBefore: ['subscribe'] }]);
    docker.emit(event('container', 'start'));
    docker.emit(event('container', 'exec_start: sh'));
    docker.emit(event('network', 'disconnect'));
    await clock.advance(0);
    expect(requests.map((r) => r.reason)).toEqual(['startup', 'event', 'event']);
    await watch.stop();
    expect(docker.subscriberCount).toBe(0);
  });

  it('tells its follower of every event delivered, the irrelevant ones too (they fill the engine’s queue as well)', async () => {
    const docker = new FakeDockerClient();
    const clock = new FakeClock();
    const cache = new ContainerCache(docker);
    const runner = { request: () => undefined };
    const watch = new DockerWatch({ docker, runner, logger: memoryLogger().logger, clock, follower: cache });
    watch.start();
    await clock.advance(0);
    // Right after connecting, the next check lists anyway; a listed read ends that.
    expect(cache.listDue).toBe(true);
    await cache.read({ full: true });
    await cache.read({ full: true, listed: true });
    expect(cache.listDue).toBe(false);
    for (let i = 0; i < LIST_AFTER_EVENTS - 2; i++) docker.emit(event('container', 'exec_start: sh'));
    docker.emit(event('container', 'start'));
    await clock.advance(0);
    expect(cache.listDue).toBe(false);
    docker.emit(event('container', 'health_status: healthy'));
    await clock.advance(0);
    expect(cache.listDue).toBe(true);
    await watch.stop();
  });

  it('retries with capped backoff, logs each state change once, and resyncs on reconnect', async () => {
    const { docker, clock, records, requests, watch } = setup();
    docker.reachable = false;
    watch.start();
    await clock.advance(100 + 200 + 400 + 400 + 400);
    expect(docker.calls.filter((c) => c === 'subscribe')).toHaveLength(6);
    const warnings = () => records.filter((r) => r.msg === 'docker unreachable: keeping rules, retrying');
    expect(warnings()).toHaveLength(1);
    expect(requests).toEqual([]);

    docker.reachable = true;
    await clock.advance(400);
    expect(records.filter((r) => r.msg === 'connected to docker')).toHaveLength(1);
    expect(requests.map((r) => [r.reason, r.resetBackoff])).toEqual([['reconnect', true]]);

    // The engine stops: the stream ends; one more warning, then a quick reconnect.
    docker.endStreams();
    await clock.advance(100);
    expect(warnings()).toHaveLength(2);
    expect(requests.map((r) => r.reason)).toEqual(['reconnect', 'reconnect']);
    await watch.stop();
  });

  it('stops promptly while waiting to retry', async () => {
    const { docker, clock, watch } = setup();
    docker.reachable = false;
    watch.start();
    await clock.advance(0);
    await watch.stop();
    await clock.advance(10_000);
    expect(docker.calls.filter((c) => c === 'subscribe')).toHaveLength(1);
  });
});
