/**
 * Which stream the updates come from. Sequence numbers and broadcast ids start over in a new
 * stream (a re-enabled DynamoDB stream, a restarted local stack), so on a change of `stream`
 * what was remembered about ordering must go. A late message of a stream already replaced is
 * dropped: applying it would reset the state again and put older values on screen.
 */

import { BoundedSet } from './bounded.js';

export type Followed =
  /** The same stream, or a message that names none (the seed's, older servers'). */
  | 'same'
  /** The first stream seen: nothing to reset. */
  | 'first'
  /** A new stream replaced the current one: reset the ordering state. */
  | 'reset'
  /** A stream already replaced: drop the message. */
  | 'retired';

export class StreamTracker {
  private label: string | null = null;
  private readonly retired: BoundedSet<string>;

  constructor(retiredCapacity: number) {
    this.retired = new BoundedSet(retiredCapacity);
  }

  /** The current stream's label, once one was seen. */
  get current(): string | null {
    return this.label;
  }

  follow(stream: string | null): Followed {
    if (stream === null || stream === this.label) return 'same';
    if (this.retired.has(stream)) return 'retired';
    const previous = this.label;
    this.label = stream;
    if (previous === null) return 'first';
    this.retired.add(previous);
    return 'reset';
  }
}
