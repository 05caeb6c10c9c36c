import { describe, expect, it } from 'vitest';
import { decisionFor, parseContainerLabels, parsePortSpec, sourcesFor, type LabelsResult } from './labels.js';
import { ANY, NONE, parseSources } from './sources.js';

function problems(result: LabelsResult): string[] {
  return result.kind === 'invalid' ? result.problems.map((p) => `${p.label}: ${p.message}`) : [];
}

describe('parsePortSpec', () => {
  it.each([
    ['80', { from: 80, to: 80, protocol: 'tcp' }],
    ['53/udp', { from: 53, to: 53, protocol: 'udp' }],
    ['8000-8010', { from: 8000, to: 8010, protocol: 'tcp' }],
    ['9000-9000/sctp', { from: 9000, to: 9000, protocol: 'sctp' }],
    ['65535/tcp', { from: 65535, to: 65535, protocol: 'tcp' }],
  ])('%s', (text, spec) => {
    expect(parsePortSpec(text)).toEqual({ ok: true, value: spec });
  });

  it.each([
    ['0', 'ports must be 1-65535'],
    ['65536', 'ports must be 1-65535'],
    ['99999', 'ports must be 1-65535'],
    ['8010-8000', 'port range start is after its end'],
    ['080', 'unknown label'],
    ['80/TCP', 'unknown label'],
    ['80/icmp', 'unknown label'],
    ['80/', 'unknown label'],
    ['http', 'unknown label'],
    ['80,443', 'unknown label'],
    ['80 ', 'unknown label'],
    ['-80', 'unknown label'],
    ['80-', 'unknown label'],
    ['123456', 'unknown label'],
  ])('rejects %j', (text, message) => {
    const result = parsePortSpec(text);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.message).toContain(message);
  });
});

describe('parseContainerLabels', () => {
  it('shares one parsed source list between equal label values, and parses as before past its memo', () => {
    const policy = (value: string) => {
      const result = parseContainerLabels({ 'dockfw.allow': value, 'dockfw.allow.53/udp': value });
      if (result.kind !== 'labeled') throw new Error(`not labeled: ${value}`);
      return result.policy;
    };
    const value = '203.0.113.0/24, 198.51.100.7, 2001:db8::/48';
    const first = policy(value);
    expect(first.all).toBe(first.ports[0]?.sources);
    expect(policy(`${value}`).all).toBe(first.all);
    // More distinct values than the memo keeps: each still parses to what parseSources gives.
    for (let i = 0; i < 5000; i++) {
      const other = `198.51.100.${i % 256}, 203.0.113.${Math.floor(i / 256)}`;
      expect(policy(other).all).toEqual((parseSources(other) as { value: unknown }).value);
    }
    expect(policy(value).all).toEqual(first.all);
    // A bad value is an error each time, never a list.
    for (let i = 0; i < 2; i++)
      expect(problems(parseContainerLabels({ 'dockfw.allow': '203.0.113.0/33' }))).toEqual([
        'dockfw.allow: "203.0.113.0/33": prefix length must be 0-32',
      ]);
  });

  it('is unlabeled without dockfw.* keys; other labels are ignored', () => {
    expect(parseContainerLabels({})).toEqual({ kind: 'unlabeled' });
    expect(
      parseContainerLabels({ 'com.example.allow': 'junk', dockfw: 'junk', 'dockfwx.allow': 'x' }),
    ).toEqual({
      kind: 'unlabeled',
    });
  });

  it('reads dockfw.allow and port labels', () => {
    const result = parseContainerLabels({
      'dockfw.allow': 'none',
      'dockfw.allow.443': 'any',
      'dockfw.allow.53/udp': '203.0.113.0/24',
      'dockfw.allow.8000-8010': '203.0.113.0/24',
      'com.example': 'ignored',
    });
    expect(result.kind).toBe('labeled');
    if (result.kind !== 'labeled') return;
    expect(result.policy.all).toEqual(NONE);
    expect(result.policy.ports.map((p) => p.label)).toEqual([
      'dockfw.allow.443',
      'dockfw.allow.8000-8010',
      'dockfw.allow.53/udp',
    ]);
    expect(sourcesFor(result.policy, 443, 'tcp')).toEqual(ANY);
    expect(sourcesFor(result.policy, 443, 'udp')).toEqual(NONE);
    expect(sourcesFor(result.policy, 8005, 'tcp')).toEqual({
      any: false,
      v4: [{ start: 0xcb007100n, end: 0xcb0071ffn }],
      v6: [],
    });
    expect(sourcesFor(result.policy, 8011, 'tcp')).toEqual(NONE);
    expect(decisionFor(result.policy, 8010, 'tcp')?.label).toBe('dockfw.allow.8000-8010');
    expect(decisionFor(result.policy, 53, 'udp')?.label).toBe('dockfw.allow.53/udp');
    expect(decisionFor(result.policy, 53, 'tcp')?.label).toBe('dockfw.allow');
  });

  it('leaves ports without a label to the default policy when dockfw.allow is absent', () => {
    const result = parseContainerLabels({ 'dockfw.allow.443': 'any' });
    expect(result.kind === 'labeled' && sourcesFor(result.policy, 80, 'tcp')).toBeUndefined();
    expect(result.kind === 'labeled' && decisionFor(result.policy, 80, 'tcp')).toBeUndefined();
  });

  it('reports every problem, sorted by label', () => {
    const result = parseContainerLabels({
      'dockfw.allow.443': '10.0.0.0/33',
      'dockfw.allow': 'any',
      'dockfw.alow': 'any',
      'dockfw.allow.80/tcp': 'nobody',
      'dockfw.allow.http': 'any',
    });
    expect(problems(result)).toEqual([
      'dockfw.allow.443: "10.0.0.0/33": prefix length must be 0-32',
      'dockfw.allow.80/tcp: "nobody": not an IPv4/IPv6 address, CIDR block, range, any or none',
      'dockfw.allow.http: unknown label; expected dockfw.allow or dockfw.allow.<port>[-<port>][/tcp|udp|sctp]',
      'dockfw.alow: unknown label; dockfw knows dockfw.allow and dockfw.allow.<port>',
    ]);
  });

  it('rejects overlapping port labels of one protocol', () => {
    expect(
      problems(
        parseContainerLabels({
          'dockfw.allow.1-100': 'any',
          'dockfw.allow.5-6': 'any',
          'dockfw.allow.50': 'any',
          'dockfw.allow.100/udp': 'any',
          'dockfw.allow.80/tcp': 'any',
        }),
      ),
    ).toEqual([
      'dockfw.allow.5-6: ports overlap dockfw.allow.1-100',
      'dockfw.allow.50: ports overlap dockfw.allow.1-100',
      'dockfw.allow.80/tcp: ports overlap dockfw.allow.1-100',
    ]);
  });

  it('quotes keys that are not plain printable text', () => {
    expect(problems(parseContainerLabels({ 'dockfw.allow.80\n-j ACCEPT': 'any' }))).toEqual([
      '"dockfw.allow.80\\n-j ACCEPT": unknown label; expected dockfw.allow or dockfw.allow.<port>[-<port>][/tcp|udp|sctp]',
    ]);
  });

  it('says when a key has spaces around it', () => {
    const spaced = ' (spaces around the key: keys are compared exactly)';
    expect(problems(parseContainerLabels({ 'dockfw.allow ': 'any', 'dockfw.allow.443\t': 'any' }))).toEqual([
      `"dockfw.allow ": unknown label; dockfw knows dockfw.allow and dockfw.allow.<port>${spaced}`,
      `"dockfw.allow.443\\t": unknown label; expected dockfw.allow or dockfw.allow.<port>[-<port>][/tcp|udp|sctp]${spaced}`,
    ]);
  });
});
