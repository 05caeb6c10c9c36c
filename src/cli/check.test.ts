import { describe, expect, it } from 'vitest';
import { checkText } from './check.js';

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
