import { describe, expect, it } from 'vitest';
import { parseContainerLabels } from '../labels/labels.js';
import { checkText, defaultPolicyPorts } from './check.js';

describe('checkText on text that does not parse', () => {
  it('names the file, line and column of a YAML error', () => {
    const text = 'services:\n  web:\n    image: nginx\n    labels: dockfw.allow: any\n';
    expect(checkText('compose.yml', text)).toEqual({
      lines: [
        'compose.yml:4:13: not valid YAML or JSON: Nested mappings are not allowed in compact mappings',
      ],
      warnings: [],
      checked: 0,
    });
  });

  it('reports a duplicate key where it is', () => {
    const text = 'services:\n  web:\n    labels:\n      dockfw.allow: any\n      dockfw.allow: none\n';
    expect(checkText('c.yml', text).lines).toEqual([
      'c.yml:5:7: not valid YAML or JSON: Map keys must be unique',
    ]);
  });

  it('gives a position for broken inspect JSON too', () => {
    expect(checkText('inspect.json', '[\n  {"Id": "abc",\n').lines).toEqual([
      expect.stringMatching(/^inspect\.json:\d+:\d+: not valid YAML or JSON: \S/),
    ]);
  });

  it('still tells well-formed YAML that is not compose apart', () => {
    expect(checkText('x.yml', 'just: a map\n').lines).toEqual([
      'x.yml: not a compose file or a docker inspect JSON array',
    ]);
  });
});

describe('checkText on lookalike label keys', () => {
  it('warns, naming the service and the key, without failing', () => {
    const text = "services:\n  web:\n    ports: ['80:80']\n    labels:\n      Dockfw.Allow: 203.0.113.0/24\n";
    expect(checkText('c.yml', text)).toEqual({
      lines: [],
      warnings: [
        'c.yml: web: warning: label "Dockfw.Allow" is not a dockfw label (keys are case-sensitive: did you mean "dockfw.allow"?)',
      ],
      checked: 1,
    });
  });
});

describe('defaultPolicyPorts', () => {
  function policy(labels: Record<string, string>) {
    const result = parseContainerLabels(labels);
    if (result.kind !== 'labeled') throw new Error(result.kind);
    return result.policy;
  }

  it('lists published ports no label covers, as runs, once each', () => {
    const published = [
      { from: 80, to: 80, protocol: 'tcp' as const },
      { from: 8000, to: 8010, protocol: 'tcp' as const },
      { from: 80, to: 80, protocol: 'tcp' as const },
      { from: 53, to: 53, protocol: 'udp' as const },
    ];
    expect(defaultPolicyPorts(policy({ 'dockfw.allow.8003-8005': 'any' }), published)).toEqual([
      '80/tcp',
      '8000-8002/tcp',
      '8006-8010/tcp',
      '53/udp',
    ]);
  });

  it('lists none when dockfw.allow covers the rest', () => {
    const published = [{ from: 1, to: 65535, protocol: 'tcp' as const }];
    expect(
      defaultPolicyPorts(policy({ 'dockfw.allow': 'none', 'dockfw.allow.443': 'any' }), published),
    ).toEqual([]);
  });
});
