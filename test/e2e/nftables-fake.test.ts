// The nft fake the unit tests use, held against a real kernel in a throwaway
// network namespace (needs root): what the fake refuses the kernel refuses
// (and applies nothing of the batch), what it takes the kernel takes, and both
// then list the same table.
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CommandError, type CommandRunner } from '../../src/backends/command.js';
import { tableSpec } from '../../src/backends/nftables/elements.js';
import {
  ACCEPTED_STATEMENTS,
  GOOD_STATEMENT,
  REFUSED_STATEMENTS,
} from '../../src/backends/nftables/fake-nft-cases.js';
import { FakeNftKernel } from '../../src/backends/nftables/fake-nft-kernel.js';
import { readTable } from '../../src/backends/nftables/read.js';
import { renderTablePayload } from '../../src/backends/nftables/render.js';
import type { ContainerSnapshot } from '../../src/docker/snapshot.js';
import { loadConfig } from '../../src/config/config.js';
import { desiredState } from '../../src/policy/desired.js';

const PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;
const ns = `dockfw-fk-${process.pid}`;

const nftInNs: CommandRunner = async (file, args, input) => {
  const result = await execa('ip', ['netns', 'exec', ns, file, ...args], {
    env: { PATH },
    reject: false,
    ...(input === undefined ? {} : { input }),
  });
  if (result.exitCode !== 0)
    throw new CommandError(`${file} ${args.join(' ')} failed`, file, args, result.stderr, false);
  return { stdout: result.stdout };
};

const WEB: ContainerSnapshot = {
  id: 'a'.repeat(64),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '203.0.113.10' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
};
const TABLE = renderTablePayload(
  tableSpec(desiredState({ containers: [WEB], bridges: ['docker0'] }, loadConfig({}))),
);

/** Whether `run` took the payload; the error text when it did not. */
async function outcome(run: CommandRunner, payload: string): Promise<true | string> {
  try {
    await run('nft', ['-f', '-'], payload);
    return true;
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return error.stderr;
  }
}

/** The table as dockfw reads it, in a comparable form. */
async function seen(run: CommandRunner): Promise<unknown> {
  const table = await readTable(run);
  return table && { chains: [...table.chains], sets: [...table.sets] };
}

describe('the nft fake agrees with the kernel', () => {
  let fake: FakeNftKernel;
  beforeAll(async () => {
    await execa('ip', ['netns', 'add', ns], { env: { PATH } });
  });
  afterAll(async () => {
    await execa('ip', ['netns', 'del', ns], { env: { PATH }, reject: false });
  });
  beforeEach(async () => {
    fake = new FakeNftKernel();
    for (const run of [nftInNs, fake.run]) expect(await outcome(run, TABLE)).toBe(true);
  });

  it('lists the same table once the rendered payload is loaded', async () => {
    expect(await seen(fake.run)).toEqual(await seen(nftInNs));
  });

  it.each(REFUSED_STATEMENTS)('both refuse %s, and keep nothing of the batch', async (_what, line) => {
    const before = await seen(nftInNs);
    const payload = `${GOOD_STATEMENT}\n${line}\n`;
    const real = await outcome(nftInNs, payload);
    expect(real, 'the kernel took it').not.toBe(true);
    expect(await outcome(fake.run, payload)).not.toBe(true);
    expect(await seen(nftInNs)).toEqual(before);
    expect(await seen(fake.run)).toEqual(before);
  });

  it('both take the same outside edits and then list the same table', async () => {
    for (const line of ACCEPTED_STATEMENTS) {
      expect(await outcome(nftInNs, `${line}\n`), line).toBe(true);
      expect(await outcome(fake.run, `${line}\n`), line).toBe(true);
      expect(await seen(fake.run), line).toEqual(await seen(nftInNs));
    }
    for (const run of [nftInNs, fake.run])
      expect(await outcome(run, 'delete table inet dockfw\n')).toBe(true);
    expect(await seen(nftInNs)).toBeUndefined();
    expect(await seen(fake.run)).toBeUndefined();
  });
});
