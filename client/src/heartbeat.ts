/**
 * Ping/PONG on an open connection: a ping at once (the first RTT) and then every interval. It
 * measures the round trip, keeps API Gateway's 10-minute idle timeout from closing a quiet
 * connection, and notices a dead one: when a server that has answered pings on this connection
 * leaves one unanswered for a whole interval, the connection is declared dead (a sleeping
 * laptop's socket can stay "open" for many minutes otherwise). A server that never answers
 * pings (the seed) is never declared dead for it.
 */

import type { Clock, TimerHandle } from './env.js';

export interface HeartbeatHooks {
  /** Sends a ping; false when it could not be sent. */
  sendPing(): boolean;
  /** The connection is dead: the caller drops it. */
  dead(): void;
}

export class Heartbeat {
  private timer: TimerHandle | null = null;
  private sentAt: number | null = null;
  private answered = false;

  constructor(
    private readonly clock: Clock,
    private readonly intervalMs: number,
    private readonly hooks: HeartbeatHooks,
  ) {
    if (!(Number.isFinite(intervalMs) && intervalMs > 0)) throw new RangeError('pingIntervalMs must be a positive number');
  }

  /** Starts pinging a freshly opened connection. */
  start(): void {
    this.stop();
    this.answered = false;
    this.tick();
  }

  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.sentAt = null;
  }

  /** A PONG arrived: the round trip of the ping it answers, if one was waiting. */
  pong(): number | null {
    this.answered = true;
    if (this.sentAt === null) return null;
    const rtt = this.clock.now() - this.sentAt;
    this.sentAt = null;
    return rtt;
  }

  private tick(): void {
    this.timer = null;
    if (this.sentAt !== null && this.answered) {
      this.sentAt = null;
      this.hooks.dead();
      return;
    }
    this.sentAt = this.hooks.sendPing() ? this.clock.now() : null;
    this.timer = this.clock.setTimeout(() => this.tick(), this.intervalMs);
  }
}
