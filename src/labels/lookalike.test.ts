import { describe, expect, it } from 'vitest';
import { lookalikeLabels } from './lookalike.js';

const warn = (key: string): string[] => lookalikeLabels({ [key]: 'any' }).map((w) => w.message);

describe('lookalikeLabels', () => {
  it.each([
    ['DOCKFW.ALLOW', 'keys are case-sensitive: did you mean "dockfw.allow"?'],
    ['Dockfw.Allow', 'keys are case-sensitive: did you mean "dockfw.allow"?'],
    ['Dockfw.Allow.443/UDP', 'keys are case-sensitive: did you mean "dockfw.allow.443/udp"?'],
    ['dockfw_allow', 'did you mean "dockfw.allow"?'],
    ['dockfw-allow.8000-8010', 'did you mean "dockfw.allow.8000-8010"?'],
    ['dockfw:allow', 'did you mean "dockfw.allow"?'],
    ['dockfwallow', 'did you mean "dockfw.allow"?'],
    ['dokfw.allow', 'did you mean "dockfw.allow"?'],
    ['Dockfw.Alow', 'did you mean "dockfw.allow"?'],
    [' dockfw.allow', 'keys are compared exactly, spaces included: did you mean "dockfw.allow"?'],
    ['DOCKFW.ALLOW.HTTP', 'keys are case-sensitive: dockfw knows dockfw.allow and dockfw.allow.<port>'],
    ['DOCKFW', 'keys are case-sensitive: dockfw knows dockfw.allow and dockfw.allow.<port>'],
  ])('warns about %j', (key, reason) => {
    expect(warn(key)).toEqual([`label ${JSON.stringify(key)} is not a dockfw label (${reason})`]);
  });

  it.each([
    'dockfw.allow',
    'dockfw.alow', // under dockfw.: an error from parseContainerLabels, not a warning
    'dockfw.allow ',
    'docker.allow',
    'com.docker.compose.project',
    'traefik.enable',
    'dock',
    'maintainer',
  ])('leaves %j alone', (key) => {
    expect(warn(key)).toEqual([]);
  });

  it('stays linear on long blank runs, and shortens what it quotes', () => {
    const [warning] = lookalikeLabels({ [`DOCKFW${' \t'.repeat(100_000)}allow`]: '' });
    expect(warning?.label).toBe(JSON.stringify(`DOCKFW${' \t'.repeat(25)} ...`));
    expect(warning?.message).toContain('did you mean "dockfw.allow"?');
  });

  it('quotes the key and returns the warnings sorted by key', () => {
    expect(lookalikeLabels({ dockfw_allow: 'any', 'DOCKFW.ALLOW': 'none', 'x.y': '' })).toEqual([
      {
        label: '"DOCKFW.ALLOW"',
        message:
          'label "DOCKFW.ALLOW" is not a dockfw label (keys are case-sensitive: did you mean "dockfw.allow"?)',
      },
      {
        label: '"dockfw_allow"',
        message: 'label "dockfw_allow" is not a dockfw label (did you mean "dockfw.allow"?)',
      },
    ]);
  });
});
