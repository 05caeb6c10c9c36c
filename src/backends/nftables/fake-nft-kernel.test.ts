import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { parseInspectArray } from '../../docker/inspect.js';
import type { ContainerSnapshot } from '../../docker/snapshot.js';
import { desiredState } from '../../policy/desired.js';
import { CommandError } from '../command.js';
import { diffTable, needsWrite } from './drift.js';
import { tableSpec } from './elements.js';
import { ACCEPTED_STATEMENTS, GOOD_STATEMENT, REFUSED_STATEMENTS } from './fake-nft-cases.js';
import { FakeNftKernel } from './fake-nft-kernel.js';
import { readTable } from './read.js';
import { readNftRecords } from './records.js';
import { renderElementPayload, renderTablePayload, renderUninstallPayload } from './render.js';

const fixtures = new URL('../../../test/fixtures/', import.meta.url);

const WEB: ContainerSnapshot = {
  id: 'a'.repeat(64),
  name: 'web',
  running: true,
  labels: { 'dockfw.allow': '203.0.113.10' },
  networks: [{ network: 'bridge', ipv4: '172.17.0.2', ipv6: '2001:db8:ffff::2' }],
  ports: [{ containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 8080 }],
};

function multiNetwork() {
  const json: unknown = JSON.parse(readFileSync(new URL('multi-network.json', fixtures), 'utf8'));
  return desiredState(
    { containers: parseInspectArray(json), bridges: ['docker0', 'br-0c1d2e3f4a5b', 'lan0'] },
    loadConfig({ DOCKFW_DEFAULT_POLICY: 'deny', DOCKFW_EXTERNAL_INTERFACES: 'eth0,eth1' }),
  );
}

function loaded(env: Record<string, string> = {}) {
  const kernel = new FakeNftKernel();
  const spec = tableSpec(desiredState({ containers: [WEB], bridges: ['docker0'] }, loadConfig(env)));
  kernel.apply(renderTablePayload(spec));
  return { kernel, spec };
}

/** The error nft printed for `payload`, or undefined when it applied. */
async function rejection(kernel: FakeNftKernel, payload: string): Promise<string | undefined> {
  try {
    await kernel.run('nft', ['-f', '-'], payload);
    return undefined;
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return error.stderr;
  }
}

describe('the stateful nft fake', () => {
  it('loads the rendered table and lists it back with no drift (both the simple and a multi-network state)', async () => {
    for (const spec of [loaded().spec, tableSpec(multiNetwork()), tableSpec(multiNetwork(), 0)]) {
      const kernel = new FakeNftKernel();
      await kernel.run('nft', ['-f', '-'], renderTablePayload(spec));
      const drift = diffTable(spec, await readTable(kernel.run));
      expect(drift).toEqual({
        structural: [],
        rulesMissing: [],
        rulesUnexpected: [],
        reordered: false,
        changes: [],
      });
    }
  });

  it('lists what the real kernel lists for the same payload (the recorded listing)', async () => {
    const kernel = new FakeNftKernel();
    const spec = tableSpec(multiNetwork());
    kernel.apply(renderTablePayload(spec));
    const real = JSON.parse(readFileSync(new URL('nftables.multi-network.list.json', fixtures), 'utf8')) as {
      nftables: Record<string, { name?: string; elem?: unknown[]; type?: unknown }>[];
    };
    for (const item of real.nftables) {
      const set = item.set;
      if (set?.name === undefined || set.elem === undefined) continue;
      const { stdout } = await kernel.run('nft', ['-j', 'list', 'set', 'inet', 'dockfw', set.name]);
      const mine = (JSON.parse(stdout) as typeof real).nftables.find((i) => i.set)?.set;
      expect(mine?.type).toEqual(set.type);
      expect(new Set(mine?.elem?.map((e) => JSON.stringify(e)))).toEqual(
        new Set(set.elem.map((e) => JSON.stringify(e))),
      );
    }
  });

  it('answers a missing table or set as the kernel does (readTable and the record reader see none)', async () => {
    const kernel = new FakeNftKernel();
    expect(await readTable(kernel.run)).toBeUndefined();
    expect((await readNftRecords(kernel.run)).capacity.size).toBe(0);
    const { kernel: noRecords } = loaded();
    noRecords.apply(
      renderTablePayload(tableSpec(desiredState({ containers: [], bridges: [] }, loadConfig({})), 0)),
    );
    await expect(noRecords.run('nft', ['-j', 'list', 'set', 'inet', 'dockfw', 'drops4'])).rejects.toThrow(
      CommandError,
    );
    expect((await readNftRecords(noRecords.run)).capacity.size).toBe(0);
  });

  it('applies element payloads and the uninstall payload', async () => {
    const { kernel } = loaded();
    const payload = renderElementPayload([
      { set: 'guarded4', add: ['172.17.0.3 . tcp . 80'], delete: ['172.17.0.2 . tcp . 80'] },
    ]);
    expect(await rejection(kernel, payload)).toBeUndefined();
    expect(kernel.elements('guarded4')).toEqual(['172.17.0.3 . tcp . 80']);
    expect(await rejection(kernel, renderUninstallPayload())).toBeUndefined();
    expect(kernel.exists).toBe(false);
    // Uninstalling what is not there is no error either (add, then delete).
    expect(await rejection(kernel, renderUninstallPayload())).toBeUndefined();
  });

  it.each(REFUSED_STATEMENTS)(
    'refuses %s, blaming its line, and applies nothing of the batch',
    async (_name, line, why) => {
      const { kernel } = loaded();
      const before = await kernel.run('nft', ['-j', 'list', 'table', 'inet', 'dockfw']);
      // A good statement first: it must not survive the rejected batch.
      const payload = `${GOOD_STATEMENT}\n${line}\n`;
      const stderr = await rejection(kernel, payload);
      expect(stderr).toMatch(why);
      expect(stderr).toMatch(/^\/dev\/stdin:2:/);
      expect(await kernel.run('nft', ['-j', 'list', 'table', 'inet', 'dockfw'])).toEqual(before);
      expect(kernel.writes).toHaveLength(0);
    },
  );

  it('takes what the kernel takes (an overlap of a concatenation whose ends lie outside the held element)', async () => {
    const { kernel } = loaded();
    for (const line of ACCEPTED_STATEMENTS)
      expect(await rejection(kernel, `${line}\n`), line).toBeUndefined();
    expect(kernel.elements('guarded4')).toEqual(['172.17.0.0/24 . tcp . 1-1000']);
    expect(kernel.elements('allowed4')).toEqual([]);
  });

  it('refuses element statements while the table is missing', async () => {
    const kernel = new FakeNftKernel();
    expect(await rejection(kernel, 'add element inet dockfw guarded4 { 10.9.9.9 . tcp . 80 }\n')).toMatch(
      /No such file/,
    );
    expect(await rejection(kernel, 'delete table inet dockfw\n')).toMatch(/No such file/);
    expect(kernel.exists).toBe(false);
  });

  it('refuses overlapping elements within one set declaration, and an interval in a set without the flag', async () => {
    const kernel = new FakeNftKernel();
    const overlapping =
      'table inet dockfw {\n\tset s {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {\n\t\t\t10.0.0.0/8,\n\t\t\t10.1.0.0/16\n\t\t}\n\t}\n}\n';
    expect(await rejection(kernel, overlapping)).toMatch(/^\/dev\/stdin:7:.*overlaps/);
    const plain =
      'table inet dockfw {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.0/8 }\n\t}\n}\n';
    expect(await rejection(kernel, plain)).toMatch(/flags interval/);
    expect(kernel.exists).toBe(false);
  });

  it('takes an element already there as no change, and outside statements as the kernel would', async () => {
    const { kernel } = loaded();
    expect(
      await rejection(kernel, 'add element inet dockfw guarded4 { 172.17.0.2 . tcp . 80 }\n'),
    ).toBeUndefined();
    expect(kernel.elements('guarded4')).toEqual(['172.17.0.2 . tcp . 80']);
    kernel.outside('flush chain inet dockfw forward\n');
    expect(kernel.chain('forward')).toEqual([]);
    kernel.outside(
      'add rule inet dockfw forward ip daddr . meta l4proto . th dport @guarded4 accept comment "mine"\n',
    );
    expect(kernel.chain('forward')).toEqual(['mine']);
    const drift = diffTable(loaded().spec, await readTable(kernel.run));
    expect(needsWrite(drift)).toBe(true);
  });
});
