/**
 * Reconnect delays: capped exponential backoff with full jitter. The n-th consecutive failed
 * attempt waits a delay drawn uniformly from [0, min(cap, base * 2^n)): full jitter spreads a
 * crowd of clients that lost the same server over the whole window instead of bunching them at
 * its edges, which is what keeps a restarted server from being stormed.
 *
 * Why the first window is 4 s (DEFAULT_BASE_MS): when API Gateway drops every connection at
 * once and is back at once, every dashboard retries inside the first window, N clients at N/W
 * per second. API Gateway admits 500 new connections per second per account and Region (a
 * quota shared by every client of the account; beyond it the handshake fails and that client
 * backs off further). With W = 1 s, 1,000 dashboards would arrive at about 1,000/s; with
 * W = 4 s they arrive at about 250/s, half the quota, leaving room for the other clients and for
 * the noise of random draws, while one dashboard is back after 2 s on average. tools/storm.mjs
 * measured it against the local gateway (README, "Reconnect storm"): at most 287 attempts in
 * any one second with W = 4 s, 763 with W = 1 s; when the server is down for a while, each
 * failed attempt doubles the window, which spreads the crowd further.
 */

import type { Random } from './env.js';

export interface BackoffOptions {
  /** The window of the first retry, ms (default 4000: see DEFAULT_BASE_MS). */
  baseMs?: number;
  /** The largest window, ms (default 30000). */
  capMs?: number;
  /**
   * A connection must stay open this long (ms, default 5000) before the attempt count resets.
   * A server that accepts and then drops at once would otherwise be retried at the base delay
   * forever.
   */
  stableAfterMs?: number;
}

/** The first retry's window, ms: 1,000 clients at about 250 new connections/s (see above). */
export const DEFAULT_BASE_MS = 4000;
/** The largest window, ms. */
export const DEFAULT_CAP_MS = 30_000;
/** How long a connection must stay open before the attempt count resets, ms. */
export const DEFAULT_STABLE_AFTER_MS = 5000;

export class Backoff {
  readonly baseMs: number;
  readonly capMs: number;
  readonly stableAfterMs: number;
  /** Consecutive failures since the last connection that stayed open long enough. */
  private failures = 0;

  constructor(options: BackoffOptions, private readonly random: Random) {
    this.baseMs = positive(options.baseMs, DEFAULT_BASE_MS, 'baseMs');
    this.capMs = positive(options.capMs, DEFAULT_CAP_MS, 'capMs');
    this.stableAfterMs = nonNegative(options.stableAfterMs, DEFAULT_STABLE_AFTER_MS, 'stableAfterMs');
    if (this.capMs < this.baseMs) throw new RangeError('backoff: capMs must be at least baseMs');
  }

  /** The number of consecutive failures counted so far. */
  get attempt(): number {
    return this.failures;
  }

  /** The upper bound of the window for the `attempt`-th retry. */
  windowMs(attempt: number): number {
    // 2^31 * base is past any sane cap; clamping the exponent keeps the product finite.
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(attempt, 31));
  }

  /** Draws the delay before the next retry and counts the failure. */
  nextDelayMs(): number {
    const delay = Math.floor(this.random() * this.windowMs(this.failures));
    this.failures++;
    return delay;
  }

  /** A connection that was open for `openForMs` ended: only a stable one forgives the past. */
  connectionEnded(openForMs: number): void {
    if (openForMs >= this.stableAfterMs) this.failures = 0;
  }

  /** Starts over, e.g. when the user asks to connect again. */
  reset(): void {
    this.failures = 0;
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`backoff: ${name} must be a positive number`);
  return value;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`backoff: ${name} must be a non-negative number`);
  return value;
}
