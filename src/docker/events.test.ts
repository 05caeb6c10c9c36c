import { describe, expect, it } from 'vitest';
import { isRelevantEvent, JsonLineDecoder, parseEvent } from './events.js';

describe('parseEvent', () => {
  it('reads container events (container id and name from the actor)', () => {
    const event = parseEvent({
      Type: 'container',
      Action: 'start',
      Actor: { ID: 'c1', Attributes: { name: 'web', 'dockfw.allow': '203.0.113.0/24' } },
      time: 1,
    });
    expect(event).toEqual({
      type: 'container',
      action: 'start',
      actorId: 'c1',
      containerId: 'c1',
      name: 'web',
    });
  });

  it('reads network events (the container is an attribute)', () => {
    const event = parseEvent({
      Type: 'network',
      Action: 'disconnect',
      Actor: { ID: 'n1', Attributes: { container: 'c1', name: 'bridge', type: 'bridge' } },
    });
    expect(event).toMatchObject({ type: 'network', action: 'disconnect', actorId: 'n1', containerId: 'c1' });
  });

  it('accepts the legacy fields older engines send, and ignores garbage', () => {
    expect(parseEvent({ Type: 'container', status: 'die', id: 'c2' })).toMatchObject({
      action: 'die',
      actorId: 'c2',
    });
    expect(parseEvent({ hello: 1 })).toBeUndefined();
    expect(parseEvent('start')).toBeUndefined();
    expect(parseEvent(null)).toBeUndefined();
  });
});

describe('isRelevantEvent', () => {
  const event = (type: string, action: string) => ({
    type,
    action,
    actorId: 'x',
    containerId: 'x',
    name: undefined,
  });

  it('accepts every action that can change addresses, ports, labels or presence', () => {
    for (const action of [
      'create',
      'start',
      'restart',
      'die',
      'stop',
      'kill',
      'destroy',
      'rename',
      'update',
    ]) {
      expect(isRelevantEvent(event('container', action))).toBe(true);
    }
    expect(isRelevantEvent(event('network', 'connect'))).toBe(true);
    expect(isRelevantEvent(event('network', 'disconnect'))).toBe(true);
    expect(isRelevantEvent(event('network', 'create'))).toBe(true);
    expect(isRelevantEvent(event('network', 'destroy'))).toBe(true);
  });

  it('ignores the noise', () => {
    expect(isRelevantEvent(event('container', 'exec_start: sh -c true'))).toBe(false);
    expect(isRelevantEvent(event('container', 'health_status: healthy'))).toBe(false);
    expect(isRelevantEvent(event('container', 'attach'))).toBe(false);
    expect(isRelevantEvent(event('network', 'prune'))).toBe(false);
    expect(isRelevantEvent(event('image', 'pull'))).toBe(false);
  });
});

describe('JsonLineDecoder', () => {
  it('reassembles messages cut anywhere across chunks', () => {
    const text = '{"Type":"container","Action":"start"}\n{"Type":"network","Action":"connect"}\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const decoder = new JsonLineDecoder();
      const messages = [...decoder.push(text.slice(0, cut)), ...decoder.push(text.slice(cut))];
      expect(messages).toEqual([
        { Type: 'container', Action: 'start' },
        { Type: 'network', Action: 'connect' },
      ]);
    }
  });

  it('reports a line that is not JSON and goes on', () => {
    const bad: string[] = [];
    const decoder = new JsonLineDecoder((line) => bad.push(line));
    expect(decoder.push('oops\n{"a":1}\n')).toEqual([{ a: 1 }]);
    expect(bad).toEqual(['oops']);
  });
});
