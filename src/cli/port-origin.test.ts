import { describe, expect, it } from 'vitest';
import { portOrigin } from './port-origin.js';

describe('portOrigin', () => {
  it('names the deciding label, the default policy or the invalid label', () => {
    expect(portOrigin({ origin: 'label', label: 'dockfw.allow.443' })).toBe('dockfw.allow.443');
    expect(portOrigin({ origin: 'label', label: 'dockfw.allow' })).toBe('dockfw.allow');
    expect(portOrigin({ origin: 'default' })).toBe('default policy');
    expect(portOrigin({ origin: 'invalid-label' })).toBe('invalid label');
  });

  it('still says "label" for a daemon that does not name it', () => {
    expect(portOrigin({ origin: 'label' })).toBe('label');
  });
});
