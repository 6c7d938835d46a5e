/**
 * The connection's states and the only moves between them. The client asks `transition` for
 * every change, so an impossible move (say, `open` while `closed`) is a bug that shows, not a
 * state that silently drifts.
 */

export type ConnectionState =
  /** Constructed; `connect()` not called yet. */
  | 'idle'
  /** Getting a token and opening a socket. */
  | 'connecting'
  /** The socket is open: messages flow. */
  | 'open'
  /** The last open connection dropped (or the token provider failed); a retry is scheduled. */
  | 'reconnecting'
  /** The last attempt closed before it opened (401/403, unreachable); a retry is scheduled. */
  | 'refused'
  /** `close()` was called (or the URL is unusable): nothing runs until `connect()`. */
  | 'closed';

export type ConnectionEvent =
  | 'connect' // connect() called, or a scheduled retry is due
  | 'opened' // the socket opened
  | 'dropped' // an open socket closed, or a connecting attempt failed before reaching the server
  | 'refused' // a socket closed before it opened
  | 'close'; // close() called, or an unrecoverable configuration error

const MOVES: Record<ConnectionState, Partial<Record<ConnectionEvent, ConnectionState>>> = {
  idle: { connect: 'connecting', close: 'closed' },
  connecting: { opened: 'open', refused: 'refused', dropped: 'reconnecting', close: 'closed' },
  open: { dropped: 'reconnecting', close: 'closed' },
  reconnecting: { connect: 'connecting', close: 'closed' },
  refused: { connect: 'connecting', close: 'closed' },
  closed: { connect: 'connecting', close: 'closed' },
};

/** The state `event` leads to from `state`; throws for a move the machine does not have. */
export function transition(state: ConnectionState, event: ConnectionEvent): ConnectionState {
  const next = MOVES[state][event];
  if (next === undefined) throw new Error(`connection state machine: no move from ${state} on ${event}`);
  return next;
}
