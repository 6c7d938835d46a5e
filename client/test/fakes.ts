/** Test doubles: a clock whose time only moves when told, a scripted socket, a scripted random. */

import type { Clock, CloseEventLike, MessageEventLike, TimerHandle, WebSocketClass, WebSocketLike } from '../src/index.js';

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

export class FakeClock implements Clock {
  time = 0;
  private timers: Timer[] = [];
  private nextId = 1;

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer = { id: this.nextId++, at: this.time + Math.max(0, delayMs), callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Moves time forward by `ms`, running every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.callback();
    }
    this.time = end;
  }

  /** Delays (from now) of the timers still scheduled, soonest first. */
  pendingDelays(): number[] {
    return this.timers.map((t) => t.at - this.time).sort((a, b) => a - b);
  }
}

/** A socket the test plays the server for. */
export class FakeSocket implements WebSocketLike {
  readyState = 0;
  binaryType = 'blob';
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: MessageEventLike) => void) | null = null;
  onclose: ((event: CloseEventLike) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: string[] = [];
  closedByClient: { code: number | undefined; reason: string | undefined } | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string | string[] | undefined,
  ) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  // ---- the server's side

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(message: unknown): void {
    this.onmessage?.({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }

  /** The server (or the network) closes the connection. */
  drop(code = 1006, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** The handshake fails, as `ws` reports a 401: an error event, then a close. */
  refuse(detail = 'Unexpected server response: 401'): void {
    this.onerror?.({ message: detail });
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: '' });
  }

  /** The client's messages, parsed. */
  messages(): Array<Record<string, unknown>> {
    return this.sent.map((text) => JSON.parse(text) as Record<string, unknown>);
  }

  actions(): unknown[] {
    return this.messages().map((m) => m['action']);
  }
}

/** A WebSocket class whose instances the test can reach, newest last. */
export function fakeWebSocket(): { WebSocket: WebSocketClass; sockets: FakeSocket[]; last(): FakeSocket } {
  const sockets: FakeSocket[] = [];
  class Socket extends FakeSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  return {
    WebSocket: Socket,
    sockets,
    last(): FakeSocket {
      const socket = sockets[sockets.length - 1];
      if (!socket) throw new Error('no socket was created');
      return socket;
    },
  };
}

/** A random source that returns `values` in turn (then repeats the last), counting draws. */
export function scriptedRandom(values: number[]): (() => number) & { draws: number } {
  const random = Object.assign(
    () => {
      const value = values[Math.min(random.draws, values.length - 1)] ?? 0;
      random.draws++;
      return value;
    },
    { draws: 0 },
  );
  return random;
}
