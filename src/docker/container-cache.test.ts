// What the informer can get wrong: a read that trusts a cache it cannot vouch
// for, an event lost or out of order, a container changing between its events
// and its inspect, the engine restarting under the cache.
import { describe, expect, it } from 'vitest';
import { ContainerCache, LIST_AFTER_EVENTS } from './container-cache.js';
import type { DockerEvent } from './events.js';
import { FakeDockerClient, inspectJson } from './fake-docker-client.js';

const ID = (c: string) => c.repeat(64);

function event(action: string, id: string, type = 'container'): DockerEvent {
  return { type, action, actorId: id, containerId: id, name: undefined };
}

function connect(action: string, container: string, network: string): DockerEvent {
  return { type: 'network', action, actorId: network, containerId: container, name: undefined };
}

/** A primed cache following the stream, over an engine with `web` (and whatever the test adds). */
async function primed() {
  const docker = new FakeDockerClient();
  docker.containers.set(ID('a'), inspectJson({ id: ID('a'), name: 'web', ipv4: '172.17.0.2' }));
  const cache = new ContainerCache(docker);
  cache.streamUp();
  await cache.read({ full: false });
  docker.calls.length = 0;
  return { docker, cache };
}

const names = (read: { snapshot: { containers: readonly { name: string }[] } }) =>
  read.snapshot.containers.map((c) => c.name);

describe('ContainerCache', () => {
  it('inspects only the container an event names, and keeps the unchanged ones as they were', async () => {
    const { docker, cache } = await primed();
    const before = (await cache.read({ full: true })).snapshot.containers[0];
    docker.calls.length = 0;
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    cache.observe(event('start', ID('b')));
    const read = await cache.read({ full: false });
    expect(read.full).toBe(false);
    expect(names(read)).toEqual(['web', 'db']);
    // The network list only after a network came or went (see the network test below).
    expect(docker.calls).toEqual([`inspect ${ID('b').slice(0, 12)}`]);
    expect(read.snapshot.containers[0]).toBe(before);
    // Nothing named: nothing inspected, the same objects again.
    const again = await cache.read({ full: false });
    expect(again.inspected).toBe(0);
    expect(again.snapshot.containers).toEqual(read.snapshot.containers);
    expect(again.snapshot.containers[1]).toBe(read.snapshot.containers[1]);
  });

  it('the periodic check lists, and inspects only what the list shows changed, new or gone', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    docker.containers.set(ID('c'), inspectJson({ id: ID('c'), name: 'cache', ipv4: '172.17.0.4' }));
    // A full read stamps every container with what the list said of it.
    await cache.read({ full: true });
    docker.calls.length = 0;
    const quiet = await cache.read({ full: true, listed: true });
    expect(quiet.inspected).toBe(0);
    expect(docker.calls).toEqual(['list', 'networks']);
    // Events lost: db got a new address, cache is gone, queue is new.
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.9' }));
    docker.containers.delete(ID('c'));
    docker.containers.set(ID('d'), inspectJson({ id: ID('d'), name: 'queue', ipv4: '172.17.0.5' }));
    docker.calls.length = 0;
    const read = await cache.read({ full: true, listed: true });
    expect(names(read)).toEqual(['web', 'db', 'queue']);
    expect(read.snapshot.containers.find((c) => c.name === 'db')?.networks[0]?.ipv4).toBe('172.17.0.9');
    expect(docker.calls.filter((c) => c.startsWith('inspect')).sort()).toEqual(
      [ID('b'), ID('c'), ID('d')].map((id) => `inspect ${id.slice(0, 12)}`).sort(),
    );
    // A container read since through an event has no stamp: the next check reads it again.
    cache.observe(event('start', ID('a')));
    await cache.read({ full: false });
    docker.calls.length = 0;
    await cache.read({ full: true, listed: true });
    expect(docker.calls.filter((c) => c.startsWith('inspect'))).toEqual([`inspect ${ID('a').slice(0, 12)}`]);
  });

  it('the periodic check reads everything while the cache cannot vouch for itself (stream down)', async () => {
    const { docker, cache } = await primed();
    cache.streamDown();
    await cache.read({ full: true, listed: true });
    expect(docker.calls.filter((c) => c.startsWith('inspect'))).toHaveLength(1);
    docker.calls.length = 0;
    await cache.read({ full: true, listed: true });
    expect(docker.calls.filter((c) => c.startsWith('inspect'))).toHaveLength(1);
  });

  it('an event read lists the networks when a container names one the cache does not know (made without an event)', async () => {
    const { docker, cache } = await primed();
    // docker_gwbridge, say: the engine makes it itself, no `network create` event.
    docker.networks = [...docker.networks, { Id: ID('9'), Name: 'app', Driver: 'bridge', Options: {} }];
    const withApp = inspectJson({ id: ID('b'), name: 'db' }) as { NetworkSettings: object };
    docker.containers.set(ID('b'), {
      ...withApp,
      NetworkSettings: { Networks: { app: { IPAddress: '172.20.0.2' } }, Ports: {} },
    });
    cache.observe(event('start', ID('b')));
    const read = await cache.read({ full: false });
    expect(docker.calls).toContain('networks');
    expect(read.snapshot.bridges).toEqual(['br-999999999999', 'docker0']);
  });

  it('re-inspecting an unchanged container keeps its object', async () => {
    const { cache } = await primed();
    const before = (await cache.read({ full: false })).snapshot.containers[0];
    cache.observe(event('update', ID('a')));
    const after = await cache.read({ full: false });
    expect(after.inspected).toBe(1);
    expect(after.snapshot.containers[0]).toBe(before);
  });

  it('lists everything while it cannot vouch for itself: not primed, stream down, after a failed read', async () => {
    const docker = new FakeDockerClient();
    docker.containers.set(ID('a'), inspectJson({ id: ID('a'), name: 'web' }));
    const cache = new ContainerCache(docker);
    // Nothing follows the stream yet: every read is full.
    expect((await cache.read({ full: false })).full).toBe(true);
    cache.streamUp();
    expect(cache.needsFullRead).toBe(true);
    expect((await cache.read({ full: false })).full).toBe(true);
    expect((await cache.read({ full: false })).full).toBe(false);

    docker.reachable = false;
    cache.observe(event('start', ID('a')));
    await expect(cache.read({ full: false })).rejects.toThrow(/ENOENT/);
    docker.reachable = true;
    const retried = await cache.read({ full: false });
    expect(retried.full).toBe(true);
    expect(names(retried)).toEqual(['web']);

    cache.streamDown();
    expect((await cache.read({ full: false })).full).toBe(true);
  });

  it('a failed full read keeps what it had and asks for a full read again', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    docker.inspectNetwork = () => Promise.reject(new Error('(HTTP code 500) server error'));
    docker.networks = [...docker.networks, { Id: ID('9'), Name: 'docker_gwbridge', Driver: 'bridge' }];
    await expect(cache.read({ full: true })).rejects.toThrow(/500/);
    expect(cache.needsFullRead).toBe(true);
    docker.networks = docker.networks.slice(0, 1);
    expect(names(await cache.read({ full: false }))).toEqual(['web', 'db']);
  });

  it('a lost event leaves the cache stale until the next full read repairs it', async () => {
    const { docker, cache } = await primed();
    // Started and another removed, and the events never arrived.
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    docker.containers.delete(ID('a'));
    expect(names(await cache.read({ full: false }))).toEqual(['web']);
    const repaired = await cache.read({ full: true });
    expect(names(repaired)).toEqual(['db']);
  });

  it('events out of order (die delivered before start): the inspect says what is true now', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    cache.observe(event('die', ID('b')));
    cache.observe(event('start', ID('b')));
    const running = await cache.read({ full: false });
    expect(running.snapshot.containers.find((c) => c.name === 'db')?.running).toBe(true);
    // The other way round: it has stopped since, whatever order the events came in.
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', running: false }));
    cache.observe(event('start', ID('b')));
    cache.observe(event('die', ID('b')));
    const stopped = await cache.read({ full: false });
    expect(stopped.snapshot.containers.find((c) => c.name === 'db')?.running).toBe(false);
  });

  it('a container that changes while it is inspected is inspected again by the next read', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', running: false }));
    cache.observe(event('create', ID('b')));
    const inspect = docker.inspectContainer.bind(docker);
    docker.inspectContainer = async (id) => {
      const answer = await inspect(id);
      // It starts after the engine answered, before the read is over.
      docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
      cache.observe(event('start', ID('b')));
      docker.inspectContainer = inspect;
      return answer;
    };
    const first = await cache.read({ full: false });
    expect(first.snapshot.containers.find((c) => c.name === 'db')?.running).toBe(false);
    expect(cache.needsFullRead).toBe(false);
    const second = await cache.read({ full: false });
    expect(second.inspected).toBe(1);
    expect(second.snapshot.containers.find((c) => c.name === 'db')?.running).toBe(true);
  });

  it('an event during a full read is read again afterwards', async () => {
    const { docker, cache } = await primed();
    const list = docker.listContainers.bind(docker);
    docker.listContainers = async () => {
      const ids = await list();
      docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
      cache.observe(event('start', ID('b')));
      return ids;
    };
    expect(names(await cache.read({ full: true }))).toEqual(['web']);
    docker.listContainers = list;
    expect(names(await cache.read({ full: false }))).toEqual(['web', 'db']);
  });

  it('the engine restarting under the cache: the reconnect reads all, vanished containers are dropped', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    cache.observe(event('start', ID('b')));
    await cache.read({ full: false });
    // The engine stops (stream ends); while it is down, web goes and db comes back with another address.
    cache.streamDown();
    docker.containers.delete(ID('a'));
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.9' }));
    docker.containers.set(ID('c'), inspectJson({ id: ID('c'), name: 'cache', ipv4: '172.17.0.4' }));
    cache.streamUp();
    docker.calls.length = 0;
    // Even a read asked for by an event alone lists everything now.
    const read = await cache.read({ full: false });
    expect(read.full).toBe(true);
    expect(docker.calls).toContain('list');
    expect(names(read)).toEqual(['db', 'cache']);
    expect(read.snapshot.containers.find((c) => c.name === 'db')?.networks).toEqual([
      { network: 'bridge', ipv4: '172.17.0.9' },
    ]);
  });

  it('a container gone between its event and the inspect is dropped; so is a dead one', async () => {
    const { docker, cache } = await primed();
    docker.vanishing.add(ID('a'));
    cache.observe(event('destroy', ID('a')));
    expect(names(await cache.read({ full: false }))).toEqual([]);
    const dead = inspectJson({ id: ID('b'), name: 'db', running: false }) as { State: object };
    docker.containers.set(ID('b'), { ...dead, State: { Running: false, Status: 'dead' } });
    cache.observe(event('die', ID('b')));
    expect(names(await cache.read({ full: false }))).toEqual([]);
  });

  it('an inspect it cannot read leaves the container out (closed) and says so until it reads again', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('a'), { Id: ID('a'), Name: 42 });
    cache.observe(event('rename', ID('a')));
    const read = await cache.read({ full: false });
    expect(names(read)).toEqual([]);
    expect([...read.unreadable.keys()]).toEqual([ID('a')]);
    // Not named again: still out, still unreadable.
    docker.containers.set(ID('b'), inspectJson({ id: ID('b'), name: 'db', ipv4: '172.17.0.3' }));
    cache.observe(event('start', ID('b')));
    const next = await cache.read({ full: false });
    expect(names(next)).toEqual(['db']);
    expect([...next.unreadable.keys()]).toEqual([ID('a')]);
    docker.containers.set(ID('a'), inspectJson({ id: ID('a'), name: 'web' }));
    cache.observe(event('rename', ID('a')));
    const fixed = await cache.read({ full: false });
    expect(names(fixed)).toEqual(['web', 'db']);
    expect(fixed.unreadable.size).toBe(0);
  });

  it('an unreadable container is tried again at every read, named by an event or not', async () => {
    const { docker, cache } = await primed();
    docker.containers.set(ID('a'), { Id: ID('a'), Name: 42 });
    cache.observe(event('rename', ID('a')));
    expect([...(await cache.read({ full: false })).unreadable.keys()]).toEqual([ID('a')]);
    // It reads again (the engine's answer was passing); no event names it.
    docker.containers.set(ID('a'), inspectJson({ id: ID('a'), name: 'web' }));
    docker.calls.length = 0;
    const again = await cache.read({ full: false });
    expect(docker.calls).toEqual([`inspect ${ID('a').slice(0, 12)}`]);
    expect(names(again)).toEqual(['web']);
    expect(again.unreadable.size).toBe(0);
  });

  it('lists again at the first check after connecting, and once enough events came since a list', async () => {
    const { cache } = await primed();
    // The startup list may have been answered before the engine's side of the subscription existed.
    expect(cache.listDue).toBe(true);
    await cache.read({ full: true, listed: true });
    expect(cache.listDue).toBe(false);
    for (let i = 0; i < LIST_AFTER_EVENTS - 1; i++) cache.delivered();
    expect(cache.listDue).toBe(false);
    cache.delivered();
    expect(cache.listDue).toBe(true);
    await cache.read({ full: true, listed: true });
    expect(cache.listDue).toBe(false);
    cache.streamDown();
    cache.streamUp();
    expect(cache.listDue).toBe(true);
  });

  it('an event it cannot pin to one container makes the next read full', async () => {
    for (const odd of [
      { type: 'container', action: 'start', actorId: 'x', containerId: 'x', name: undefined },
      { type: 'network', action: 'disconnect', actorId: ID('f'), containerId: undefined, name: undefined },
      { type: 'plugin', action: 'enable', actorId: ID('1'), containerId: undefined, name: undefined },
    ]) {
      const { cache } = await primed();
      cache.observe(odd);
      expect(cache.needsFullRead).toBe(true);
      expect((await cache.read({ full: false })).full).toBe(true);
    }
  });

  it('network connect and disconnect re-read the container; the bridges follow the network list', async () => {
    const { docker, cache } = await primed();
    const net = { Id: ID('e'), Name: 'app', Driver: 'bridge', Options: {} };
    docker.networks = [...docker.networks, net];
    cache.observe({
      type: 'network',
      action: 'create',
      actorId: net.Id,
      containerId: undefined,
      name: 'app',
    });
    const withApp = inspectJson({ id: ID('a'), name: 'web' }) as { NetworkSettings: object };
    docker.containers.set(ID('a'), {
      ...withApp,
      NetworkSettings: {
        Networks: {
          bridge: { IPAddress: '172.17.0.2', GlobalIPv6Address: '' },
          app: { IPAddress: '172.20.0.2' },
        },
        Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] },
      },
    });
    cache.observe(connect('connect', ID('a'), net.Id));
    const read = await cache.read({ full: false });
    expect(read.full).toBe(false);
    expect(read.snapshot.bridges).toEqual(['br-eeeeeeeeeeee', 'docker0']);
    expect(read.snapshot.containers[0]?.networks.map((n) => n.ipv4)).toEqual(['172.17.0.2', '172.20.0.2']);
    docker.containers.set(ID('a'), inspectJson({ id: ID('a'), name: 'web' }));
    cache.observe(connect('disconnect', ID('a'), net.Id));
    docker.networks = docker.networks.slice(0, 1);
    cache.observe({
      type: 'network',
      action: 'destroy',
      actorId: net.Id,
      containerId: undefined,
      name: 'app',
    });
    const after = await cache.read({ full: false });
    expect(after.snapshot.bridges).toEqual(['docker0']);
    expect(after.snapshot.containers[0]?.networks.map((n) => n.ipv4)).toEqual(['172.17.0.2']);
  });

  it('a Swarm task on an overlay network gets its docker_gwbridge address on an event read too', async () => {
    const { docker, cache } = await primed();
    const gw = { Id: ID('9'), Name: 'docker_gwbridge', Driver: 'bridge', Options: {} };
    const overlay = { Id: ID('8'), Name: 'web_net', Driver: 'overlay', Options: {} };
    docker.networks = [...docker.networks, gw, overlay];
    docker.networkDetails.set(gw.Id, { Containers: {} });
    cache.observe({
      type: 'network',
      action: 'create',
      actorId: gw.Id,
      containerId: undefined,
      name: gw.Name,
    });
    await cache.read({ full: false });
    const task = inspectJson({ id: ID('b'), name: 'task' }) as { NetworkSettings: object };
    docker.containers.set(ID('b'), {
      ...task,
      NetworkSettings: {
        Networks: { web_net: { IPAddress: '10.0.1.5' } },
        Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8081' }] },
      },
    });
    docker.networkDetails.set(gw.Id, { Containers: { [ID('b')]: { IPv4Address: '172.18.0.3/16' } } });
    cache.observe(event('start', ID('b')));
    const read = await cache.read({ full: false });
    expect(read.snapshot.containers.find((c) => c.name === 'task')?.networks).toEqual([
      { network: 'web_net', ipv4: '10.0.1.5' },
      { network: 'docker_gwbridge', ipv4: '172.18.0.3' },
    ]);
    // A plain bridge container's event does not re-read the gateway.
    docker.calls.length = 0;
    cache.observe(event('update', ID('a')));
    await cache.read({ full: false });
    expect(docker.calls.some((c) => c.startsWith('inspect network'))).toBe(false);
    // The task goes: its gateway endpoint goes with it.
    docker.containers.delete(ID('b'));
    docker.networkDetails.set(gw.Id, { Containers: {} });
    cache.observe(event('destroy', ID('b')));
    const gone = await cache.read({ full: false });
    expect(names(gone)).toEqual(['web']);
    // And it comes back (gateway endpoint first, then the task): not stale.
    docker.networkDetails.set(gw.Id, { Containers: { [ID('b')]: { IPv4Address: '172.18.0.7/16' } } });
    cache.observe(connect('connect', ID('b'), gw.Id));
    docker.containers.set(ID('b'), {
      ...task,
      NetworkSettings: {
        Networks: { web_net: { IPAddress: '10.0.1.6' } },
        Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8081' }] },
      },
    });
    cache.observe(event('start', ID('b')));
    const back = await cache.read({ full: false });
    expect(back.snapshot.containers.find((c) => c.name === 'task')?.networks).toEqual([
      { network: 'web_net', ipv4: '10.0.1.6' },
      { network: 'docker_gwbridge', ipv4: '172.18.0.7' },
    ]);
  });
});
