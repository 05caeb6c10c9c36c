import { afterEach, describe, expect, it } from 'vitest';
import { installStopSignals } from './signals.js';

describe('installStopSignals', () => {
  const before = { term: process.listeners('SIGTERM'), int: process.listeners('SIGINT') };
  afterEach(() => {
    for (const l of process.listeners('SIGTERM')) if (!before.term.includes(l)) process.off('SIGTERM', l);
    for (const l of process.listeners('SIGINT')) if (!before.int.includes(l)) process.off('SIGINT', l);
  });

  it('reports the first signal and exits at once on the second', async () => {
    const exits: number[] = [];
    const signals = installStopSignals((code) => exits.push(code));
    process.emit('SIGTERM', 'SIGTERM');
    expect(await signals.received).toBe('SIGTERM');
    expect(exits).toEqual([]);
    process.emit('SIGINT', 'SIGINT');
    expect(exits).toEqual([0]);
  });
});
