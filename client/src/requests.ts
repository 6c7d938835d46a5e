/**
 * The requests sent on the current connection and what the server turned out to support.
 *
 * Replies carry no request id, and API Gateway may run two requests of one connection
 * concurrently, so an ERROR is matched to the request it names (the server says
 * `unknown action "subscribe"`), else to the oldest one waiting. An older server answers
 * `subscribe` and `snapshot` with ERROR (or, without a route for them, API Gateway's
 * "Forbidden"); the client then carries on without them on that connection. What a server
 * supports is learned again on every connection: it may have been upgraded in between.
 *
 * An ERROR about the filter a `subscribe` or `snapshot` carried (the server says "invalid
 * filter (the filter is unchanged): …", also for types the token does not allow) refuses that
 * request, not the action: the server knows the action, so it is marked supported.
 */

import type { Filter } from './filter.js';
import type { Action } from './protocol.js';

export type Support = 'unknown' | 'supported' | 'unsupported';

export type Capabilities = Record<Action, Support>;

export interface Pending {
  action: Action;
  /** For a snapshot: the store's mark when it was requested. */
  mark: number | null;
  /** For a subscribe or snapshot: the filter it carried. */
  filter: Filter | null;
}

export interface Failure {
  /** The request the error answers, when one was waiting. */
  action: Action | undefined;
  /** The action was not known to work: it is now marked unsupported on this connection. */
  downgraded: boolean;
  /** The action had already failed that way on this connection (say, every ping to the seed). */
  repeated: boolean;
  /** The server refused the filter this subscribe or snapshot carried (that filter); else null. */
  refusedFilter: Filter | null;
}

const ACTIONS: readonly Action[] = ['subscribe', 'snapshot', 'ping'];

/** Waiting requests kept at most (a server that never answers pings must not grow this). */
const MAX_PENDING = 32;

export class Requests {
  private pending: Pending[] = [];
  private support: Capabilities = unknownSupport();

  /** A new connection: nothing is waiting, nothing is known. */
  reset(): void {
    this.pending = [];
    this.support = unknownSupport();
  }

  get capabilities(): Readonly<Capabilities> {
    return this.support;
  }

  /** False once the server refused `action` on this connection. */
  mayUse(action: Action): boolean {
    return this.support[action] !== 'unsupported';
  }

  sent(action: Action, mark: number | null = null, filter: Filter | null = null): void {
    this.pending.push({ action, mark, filter });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
  }

  /** A reply for `action` arrived: the oldest such request is answered. */
  answered(action: Action): Pending | undefined {
    this.support[action] = 'supported';
    const index = this.pending.findIndex((p) => p.action === action);
    return index < 0 ? undefined : this.pending.splice(index, 1)[0];
  }

  /** An ERROR (or API Gateway's error) arrived: which request did it answer? */
  failed(message: string): Failure {
    if (isAboutTheFilter(message)) {
      // Only a subscribe or snapshot carries one; the message may quote filter values that
      // look like action names, so it is not searched for one.
      const request = this.takeOldest(FILTERED);
      if (request) {
        this.support[request.action] = 'supported';
        return { action: request.action, downgraded: false, repeated: false, refusedFilter: request.filter ?? {} };
      }
    }
    const request = this.takeNamedIn(message) ?? this.pending.shift();
    if (!request) return { action: undefined, downgraded: false, repeated: false, refusedFilter: null };
    // Once supported, an error is about that one request (say, a failed write), not support.
    const before = this.support[request.action];
    if (before === 'unknown') this.support[request.action] = 'unsupported';
    return {
      action: request.action,
      downgraded: before === 'unknown',
      repeated: before === 'unsupported',
      refusedFilter: null,
    };
  }

  /** The oldest waiting request of one of `actions`. */
  private takeOldest(actions: readonly Action[]): Pending | undefined {
    const index = this.pending.findIndex((p) => actions.includes(p.action));
    return index < 0 ? undefined : this.pending.splice(index, 1)[0];
  }

  /** The waiting request whose action the message names, quoted first ("subscribe"). */
  private takeNamedIn(message: string): Pending | undefined {
    const waiting = ACTIONS.filter((a) => this.pending.some((p) => p.action === a));
    const named =
      waiting.find((a) => message.includes(`"${a}"`)) ?? waiting.find((a) => new RegExp(`\\b${a}\\b`).test(message));
    if (named === undefined) return undefined;
    const index = this.pending.findIndex((p) => p.action === named);
    return this.pending.splice(index, 1)[0];
  }
}

/** The requests that carry a filter. */
const FILTERED: readonly Action[] = ['subscribe', 'snapshot'];

/** An ERROR that refuses a request's filter ("invalid filter (the filter is unchanged): …"). */
function isAboutTheFilter(message: string): boolean {
  return /\bfilter\b/i.test(message);
}

function unknownSupport(): Capabilities {
  return { subscribe: 'unknown', snapshot: 'unknown', ping: 'unknown' };
}
