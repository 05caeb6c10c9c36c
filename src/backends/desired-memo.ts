// What each family's desired content was at the last sync, so a write can be
// told apart: expected (the containers changed) or a repair (someone else changed the kernel).
// A digest is kept, not the content: at 5,000 containers the text is megabytes.
import { createHash } from 'node:crypto';
import type { Family } from '../docker/snapshot.js';

const digest = (content: string): string => createHash('sha256').update(content).digest('base64');

export class DesiredMemo {
  private readonly last = new Map<Family, string>();

  /** Whether `content` differs from what was remembered (true before the first sync). */
  changed(family: Family, content: string): boolean {
    return this.last.get(family) !== digest(content);
  }

  remember(family: Family, content: string): void {
    this.last.set(family, digest(content));
  }
}
