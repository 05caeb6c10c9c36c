// A container whose inspect cannot be parsed is left closed and said once, not on every sync.
import { describe, expect, it } from 'vitest';
import type { FamilyReport } from '../backends/firewall.js';
import { defaultConfig } from '../config/config.js';
import { FakeDockerClient, inspectJson } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import type { FirewallSync as Firewall } from '../backends/firewall.js';
import { createSync } from './sync.js';

const firewall: Firewall = { reconcile: () => Promise.resolve([] as FamilyReport[]) };
const ID = '9'.repeat(64);

describe('createSync with an unreadable container', () => {
  it('logs it when it appears, not again while it stays, and again after it came back', async () => {
    const docker = new FakeDockerClient();
    const { logger, records } = memoryLogger();
    const sync = createSync({ docker, config: defaultConfig(), firewall, logger });
    const complaints = () => records.filter((r) => r.msg === 'cannot read container: left closed');
    const reasons = new Set(['event'] as const);
    docker.containers.set(ID, { Id: ID, Name: 42 });
    await sync(reasons);
    await sync(reasons);
    await sync(reasons);
    expect(complaints()).toHaveLength(1);
    expect(complaints()[0]).toMatchObject({ level: 50, container: ID });
    docker.containers.set(ID, inspectJson({ id: ID, name: 'fixed' }));
    await sync(reasons);
    docker.containers.set(ID, { Id: ID, Name: 42 });
    await sync(reasons);
    expect(complaints()).toHaveLength(2);
  });
});
