import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import { FakeDockerClient } from '../docker/fake-docker-client.js';
import { memoryLogger } from '../observe/memory-logger.js';
import { RevokingFirewall } from './revocation.js';
import { Conntrack } from './conntrack.js';
import { createFirewall } from './create.js';
import { fakeConntrack } from './fake-conntrack.js';
import { CommandError } from './command.js';
import { SelectedFirewall } from './select.js';

describe('wiring the firewall', () => {
  it('cuts revoked connections (and so allows the fast path) only where conntrack works', async () => {
    const { logger, records } = memoryLogger();
    const working = await createFirewall(
      loadConfig({}),
      new FakeDockerClient(),
      logger,
      new Conntrack(fakeConntrack().run),
    );
    expect(working.sync).toBeInstanceOf(RevokingFirewall);
    expect(records.filter((r) => r.level >= 40)).toEqual([]);

    const broken = fakeConntrack();
    broken.failing = true;
    const strict = await createFirewall(
      loadConfig({}),
      new FakeDockerClient(),
      logger,
      new Conntrack(broken.run),
    );
    expect(strict.sync).toBeInstanceOf(SelectedFirewall);
    const missing = new Conntrack(() =>
      Promise.reject(new CommandError('conntrack not found: install conntrack', 'conntrack', [], '', true)),
    );
    expect(
      (await createFirewall(loadConfig({}), new FakeDockerClient(), logger, missing)).sync,
    ).toBeInstanceOf(SelectedFirewall);
    expect(records.filter((r) => r.msg.startsWith('conntrack not usable')).map((r) => r.error)).toEqual([
      expect.stringContaining('Protocol not supported'),
      'conntrack not found: install conntrack',
    ]);
  });
});
