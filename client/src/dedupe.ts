/**
 * Drops a METRICS_UPDATE (or SNAPSHOT) part that already arrived: retries on the server side
 * may deliver a part twice, and each broadcast id + part number names exactly one payload.
 */

import { BoundedSet } from './bounded.js';

export class PartDedupe {
  private readonly seen: BoundedSet<string>;

  /** `capacity`: how many parts are remembered (the oldest are forgotten first). */
  constructor(capacity: number) {
    this.seen = new BoundedSet(capacity);
  }

  /**
   * True when `id`/`part` of `kind` arrived before; otherwise remembers it and returns false.
   * `kind` keeps broadcast ids and snapshot ids apart.
   */
  isDuplicate(kind: string, id: string, part: number): boolean {
    const key = `${kind}\u0000${id}\u0000${part}`;
    if (this.seen.has(key)) return true;
    this.seen.add(key);
    return false;
  }

  clear(): void {
    this.seen.clear();
  }
}
