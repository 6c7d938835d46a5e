/**
 * What the client needs from its surroundings, as small interfaces so that tests can pass fakes
 * (a fake clock, a scripted random source, a fake socket) and Node 20 can pass `ws`.
 */

/** Opaque handle of a scheduled callback. */
export type TimerHandle = unknown;

/** Time and timers. `now()` is in milliseconds and only ever compared with itself. */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** A source of numbers uniform in [0, 1), like `Math.random`. */
export type Random = () => number;

/** The event a socket passes to `onclose`. */
export interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
}

/** The event a socket passes to `onmessage`: text, or bytes for a binary frame. */
export interface MessageEventLike {
  readonly data: unknown;
}

/**
 * A socket event handler. The client only assigns handlers, never calls them, so the parameter
 * is `never`: the browser's, Node 22's and the `ws` package's sockets, whose handlers take
 * their own event types, then all fit without a cast.
 */
export type SocketHandler = ((event: never) => void) | null;

/**
 * The part of the WHATWG WebSocket that the client uses; the browser's `WebSocket`, Node 22's
 * global one and the `ws` package's all fit. The events the client reads are
 * `MessageEventLike` (onmessage), `CloseEventLike` (onclose) and, when present, a `message`
 * string on the error event (`ws` says why a handshake failed there).
 */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onopen: SocketHandler;
  onmessage: SocketHandler;
  onclose: SocketHandler;
  onerror: SocketHandler;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `new WebSocketClass(url, protocols)`. */
export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** `readyState` of an open socket (WHATWG `WebSocket.OPEN`). */
export const OPEN = 1;

export const systemClock: Clock = {
  // A monotonic clock where there is one: RTTs and "stayed open long enough" must not jump
  // with wall-clock adjustments.
  now: () => (typeof performance !== 'undefined' ? performance.now() : Date.now()),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** The global WebSocket (browsers, Node 22+), or undefined (Node 20 without a flag). */
export function globalWebSocket(): WebSocketClass | undefined {
  const candidate = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof candidate === 'function' ? (candidate as WebSocketClass) : undefined;
}
