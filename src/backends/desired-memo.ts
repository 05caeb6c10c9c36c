// What each family's desired content was at the last sync, so a write can be
// told apart: expected (the containers changed) or a repair (someone else changed the kernel).
import type { Family } from '../docker/snapshot.js';

export class DesiredMemo {
  private readonly last = new Map<Family, string>();

  /** Whether `content` differs from what was remembered (true before the first sync). */
  changed(family: Family, content: string): boolean {
    return this.last.get(family) !== content;
  }

  remember(family: Family, content: string): void {
    this.last.set(family, content);
  }
}
