/**
 * MetricsClient: one dashboard's connection to the fan-out back end. It owns the socket's
 * lifecycle (state machine, reconnect with backoff, heartbeat), asks for a subscription and a
 * snapshot on every open, and keeps the entities current through the Receiver.
 *
 * Every callback of a socket, timer or token promise checks that it still belongs to the
 * current attempt, so nothing from an abandoned socket or a closed client can change state.
 */

import { Backoff, type BackoffOptions } from './backoff.js';
import { Emitter, type Listener } from './emitter.js';
import {
  OPEN,
  globalWebSocket,
  systemClock,
  type Clock,
  type CloseEventLike,
  type MessageEventLike,
  type Random,
  type TimerHandle,
  type WebSocketClass,
  type WebSocketLike,
} from './env.js';
import { copyFilter, isEverything, matchesFilter, normalizeFilter, sameFilter, type Filter } from './filter.js';
import { Heartbeat } from './heartbeat.js';
import {
  parseServerMessage,
  pingMessage,
  snapshotMessage,
  subscribeMessage,
  type Action,
  type PartRef,
  type ServerMessage,
} from './protocol.js';
import { Receiver, type Received } from './receiver.js';
import { Requests, type Capabilities } from './requests.js';
import { transition, type ConnectionEvent, type ConnectionState } from './state.js';
import { newStats, type ClientStats } from './stats.js';
import { EntityStore, type Change, type Entity } from './store.js';

/** Gives the token for the next connection; called on every (re)connect. Falsy: no token. */
export type TokenProvider = () => string | null | undefined | PromiseLike<string | null | undefined>;

export interface ClientOptions {
  /** The WebSocket URL, e.g. `wss://{api-id}.execute-api.{region}.amazonaws.com/prod`. */
  url: string;
  /** A token, or a function called before every connection attempt (so it can refresh one). */
  token?: string | TokenProvider;
  /**
   * Where the token goes: as the WebSocket subprotocol (default: it stays out of URLs and
   * access logs), or as the `?token=` query parameter.
   */
  tokenIn?: 'protocol' | 'query';
  /** What to receive; the default is everything. Change it later with `setFilter`. */
  filter?: Filter;
  /** Ask for a snapshot of the current state on every open (default true). */
  snapshot?: boolean;
  /** The WebSocket class; default the global one. On Node 20, pass the `ws` package's. */
  WebSocket?: WebSocketClass;
  backoff?: BackoffOptions;
  /** Ping interval, ms (default 60000; API Gateway closes a connection idle for 10 minutes). */
  pingIntervalMs?: number;
  /** An attempt not open after this long (ms, default 15000) counts as refused. */
  connectTimeoutMs?: number;
  /** Message parts remembered for duplicate detection (default 1000). */
  dedupeCapacity?: number;
  /** Removed entities whose sequence is remembered (default 10000). */
  tombstoneCapacity?: number;
  /** Replaced streams remembered, whose late messages are dropped (default 16). */
  retiredStreamCapacity?: number;
  /** Time and timers (tests pass a fake). */
  clock?: Clock;
  /** Uniform numbers in [0, 1) for the backoff's jitter (tests pass a script). */
  random?: Random;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** `reconnecting` / `refused`: ms until the next attempt; otherwise null. */
  retryInMs: number | null;
  /** Consecutive failed attempts so far. */
  attempt: number;
  /** `reconnecting` / `refused`: how the socket ended; otherwise null. */
  close: CloseInfo | null;
}

/** Where a change came from. */
export type ChangeSource = 'update' | 'snapshot' | 'filter';

/**
 * The subscription: what the client asks for and what the server has confirmed.
 * - `offline`: not connected; `filter` is asked for on the next open;
 * - `pending`: asked for on this connection, not confirmed yet;
 * - `confirmed`: the server's SUBSCRIBED echoed `filter`: it sends only what matches;
 * - `unsupported`: the server has no subscriptions (older servers): it sends everything and the
 *   client keeps what `filter` matches.
 */
export interface Subscription {
  filter: Filter;
  status: 'offline' | 'pending' | 'confirmed' | 'unsupported';
  /** The filter the server last confirmed on this connection (its SUBSCRIBED echo); null before. */
  confirmed: Filter | null;
}

export type ClientError =
  /**
   * The server answered with ERROR (or API Gateway with its own error); `action`: the request it
   * answers; `refusedFilter`: the filter the server refused (an invalid one, or types the token
   * does not allow), else null. A refused subscribe leaves the server's filter unchanged, and
   * the client goes back to it (see `setFilter`).
   */
  | { kind: 'server'; message: string; action: Action | undefined; gateway: boolean; refusedFilter: Filter | null }
  /** An attempt closed before it opened: refused (401/403), unreachable, or timed out. */
  | { kind: 'refused'; code: number; reason: string; detail: string | null }
  /** The token provider threw or rejected; the attempt is retried with backoff. */
  | { kind: 'token'; error: unknown }
  /** The socket could not be created (a bad URL, a token not valid as a subprotocol); the client closed. */
  | { kind: 'config'; error: unknown }
  /** A frame that is not a message of the protocol. */
  | { kind: 'protocol'; message: string };

export interface ClientEvents {
  state: StateChange;
  upsert: { entity: Entity; previous: Entity | undefined; source: ChangeSource };
  remove: { entity: Entity; source: ChangeSource };
  /**
   * Every change one message (or a filter change) made, after its upsert/remove events; `ref`:
   * the message's broadcast (or snapshot) `id`, `part` and `parts`, null when it had none.
   */
  batch: { changes: readonly Change[]; source: ChangeSource; snapshotComplete: boolean; ref: PartRef | null };
  /** A new stream replaced the previous one: ordering state was reset, values kept. */
  stream: { from: string; to: string };
  /** What the server supports on this connection changed. */
  capabilities: Readonly<Capabilities>;
  /** The subscription changed: a new filter, a SUBSCRIBED, a refusal, a new connection. */
  subscription: Subscription;
  /** A ping's round trip, ms. */
  rtt: { rttMs: number };
  error: ClientError;
}

const NORMAL_CLOSURE = 1000;
/** What the client reports for a socket it gave up on itself (no close frame was seen). */
const ABNORMAL_CLOSURE = 1006;

export class MetricsClient {
  private readonly events = new Emitter<ClientEvents>();
  private readonly options: ClientOptions;
  private readonly WebSocketImpl: WebSocketClass;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly heartbeat: Heartbeat;
  private readonly store: EntityStore;
  private readonly receiver: Receiver;
  private readonly requests = new Requests();
  private readonly counters = newStats();
  private filter: Filter;
  /** The last filter the server accepted (or the first one asked for): where a refusal goes back to. */
  private accepted: Filter;
  /** The server's SUBSCRIBED echo on the current connection; null before one. */
  private confirmed: Filter | null = null;
  /** The last subscription announced, to announce only changes. */
  private announced = '';

  private current: ConnectionState = 'idle';
  private socket: WebSocketLike | null = null;
  /** Bumped for every attempt and by close(): callbacks of older attempts are ignored. */
  private attemptId = 0;
  private openedAt: number | null = null;
  private retryTimer: TimerHandle | null = null;
  private connectTimer: TimerHandle | null = null;
  /** What the socket's error event said (`ws` says why a handshake failed; browsers do not). */
  private socketErrorDetail: string | null = null;
  private lastRtt: number | null = null;

  constructor(options: ClientOptions) {
    const WebSocketImpl = options.WebSocket ?? globalWebSocket();
    if (!WebSocketImpl) {
      throw new TypeError('MetricsClient: no global WebSocket here; pass options.WebSocket (on Node 20: the ws package)');
    }
    this.options = options;
    this.WebSocketImpl = WebSocketImpl;
    this.clock = options.clock ?? systemClock;
    this.filter = copyFilter(options.filter);
    this.accepted = normalizeFilter(this.filter);
    this.backoff = new Backoff(options.backoff ?? {}, options.random ?? Math.random);
    this.heartbeat = new Heartbeat(this.clock, options.pingIntervalMs ?? 60_000, {
      sendPing: () => this.request('ping'),
      dead: () => this.abandonSocket('heartbeat: no PONG within the ping interval'),
    });
    this.store = new EntityStore(options.tombstoneCapacity ?? 10_000);
    this.receiver = new Receiver(this.store, (id, data) => matchesFilter(this.filter, id, data), this.counters, {
      dedupeCapacity: options.dedupeCapacity ?? 1000,
      retiredStreamCapacity: options.retiredStreamCapacity ?? 16,
    });
  }

  // ---------------------------------------------------------------- public API

  on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.events.on(type, listener);
  }

  off<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): void {
    this.events.off(type, listener);
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** The entities currently shown, by id (live view: read it, do not keep it across events). */
  get entities(): ReadonlyMap<string, Entity> {
    return this.store.entities;
  }

  /** A copy of the counters. */
  get stats(): Readonly<ClientStats> {
    return { ...this.counters };
  }

  /** What the server supports on the current connection. */
  get capabilities(): Readonly<Capabilities> {
    return { ...this.requests.capabilities };
  }

  /** The last measured round trip, ms (null before the first PONG). */
  get rttMs(): number | null {
    return this.lastRtt;
  }

  /** The label of the stream updates come from (null until a message names one). */
  get stream(): string | null {
    return this.receiver.stream;
  }

  get currentFilter(): Filter {
    return copyFilter(this.filter);
  }

  /** What the client asks for and what the server has confirmed. */
  get subscription(): Subscription {
    const filter = copyFilter(this.filter);
    const confirmed = this.confirmed && copyFilter(this.confirmed);
    if (this.current !== 'open') return { filter, status: 'offline', confirmed };
    if (this.requests.capabilities.subscribe === 'unsupported') return { filter, status: 'unsupported', confirmed };
    const status = confirmed !== null && sameFilter(confirmed, filter) ? 'confirmed' : 'pending';
    return { filter, status, confirmed };
  }

  /**
   * Starts connecting. From `idle` or `closed` the backoff starts over; while a retry is
   * scheduled, it tries now; while connecting or open, it does nothing.
   */
  connect(): void {
    if (this.current === 'connecting' || this.current === 'open') return;
    if (this.current === 'idle' || this.current === 'closed') this.backoff.reset();
    this.cancelRetry();
    this.attempt();
  }

  /** Stops everything: the socket, the heartbeat, any scheduled retry. Entities stay readable. */
  close(): void {
    if (this.current === 'closed') return;
    this.attemptId++; // a token promise still pending now belongs to nobody
    this.cancelRetry();
    this.releaseSocket(NORMAL_CLOSURE, 'client closed');
    this.move('close', null, null);
  }

  /**
   * Changes what to receive: entities outside the new filter are removed at once, and on an
   * open connection the subscription and a snapshot are requested again (the snapshot brings
   * what the new filter adds). When the server refuses the filter (ERROR, reported as an
   * `error` with `refusedFilter`), its filter stays as it was, and the client goes back to the
   * last filter the server accepted (to everything when that is the one refused), subscribes
   * with it again and takes a snapshot.
   */
  setFilter(filter: Filter): void {
    this.changeFilter(copyFilter(filter));
  }

  // ---------------------------------------------------------------- connecting

  private attempt(): void {
    const id = ++this.attemptId;
    this.counters.attempts++;
    this.move('connect', null, null);
    if (id !== this.attemptId) return; // a state listener closed the client
    let token: ReturnType<TokenProvider>;
    try {
      token = this.tokenFor();
    } catch (error) {
      this.tokenFailed(id, error);
      return;
    }
    if (isPromiseLike(token)) {
      token.then(
        (value) => this.openSocket(id, value),
        (error: unknown) => this.tokenFailed(id, error),
      );
    } else {
      this.openSocket(id, token);
    }
  }

  private tokenFor(): ReturnType<TokenProvider> {
    const token = this.options.token;
    return typeof token === 'function' ? token() : token;
  }

  /** `id`: the attempt the token was for; a listener or the provider may have closed us since. */
  private tokenFailed(id: number, error: unknown): void {
    if (id !== this.attemptId) return;
    this.scheduleRetry('dropped', null);
    this.events.emit('error', { kind: 'token', error });
  }

  private openSocket(id: number, token: string | null | undefined): void {
    if (id !== this.attemptId) return;
    let socket: WebSocketLike;
    try {
      const { url, protocols } = this.endpoint(token);
      socket = protocols ? new this.WebSocketImpl(url, protocols) : new this.WebSocketImpl(url);
      socket.binaryType = 'arraybuffer';
    } catch (error) {
      // Retrying cannot fix the URL; a token that is no valid subprotocol is a caller's bug too.
      this.attemptId++;
      this.move('close', null, null);
      this.events.emit('error', { kind: 'config', error });
      return;
    }
    this.socket = socket;
    this.socketErrorDetail = null;
    socket.onopen = () => this.socket === socket && this.opened();
    socket.onmessage = (event: MessageEventLike) => this.socket === socket && this.received(event.data);
    socket.onclose = (event: CloseEventLike) => this.socket === socket && this.closed(event);
    socket.onerror = (event: { message?: unknown } | null) => {
      if (this.socket !== socket) return;
      const message = event?.message;
      if (typeof message === 'string' && message !== '') this.socketErrorDetail = message;
    };
    const timeoutMs = this.options.connectTimeoutMs ?? 15_000;
    this.connectTimer = this.clock.setTimeout(() => {
      this.connectTimer = null;
      if (id === this.attemptId && this.current === 'connecting') this.abandonSocket(`no open within ${timeoutMs} ms`);
    }, timeoutMs);
  }

  /** The URL and subprotocols carrying `token`. */
  private endpoint(token: string | null | undefined): { url: string; protocols: string[] | null } {
    if (!token) return { url: this.options.url, protocols: null };
    if (this.options.tokenIn === 'query') {
      const url = new URL(this.options.url);
      url.searchParams.set('token', token);
      return { url: url.toString(), protocols: null };
    }
    return { url: this.options.url, protocols: [token] };
  }

  private opened(): void {
    this.clearConnectTimer();
    this.openedAt = this.clock.now();
    this.counters.opens++;
    this.requests.reset();
    this.confirmed = null;
    this.receiver.connectionOpened();
    this.current = transition(this.current, 'opened');
    // Requests go out before anyone hears of the open, so a listener that closes the client
    // from its `state` handler finds nothing half-started.
    this.requestSubscription();
    this.heartbeat.start();
    this.emitState('connecting', null, null);
    this.events.emit('capabilities', this.capabilities);
    this.announceSubscription();
  }

  private closed(event: CloseEventLike): void {
    const wasOpen = this.openedAt !== null;
    const openFor = wasOpen ? this.clock.now() - (this.openedAt as number) : 0;
    this.releaseSocket(null, '');
    const close = { code: event.code, reason: event.reason };
    if (wasOpen) {
      this.backoff.connectionEnded(openFor);
      this.scheduleRetry('dropped', close);
      return;
    }
    this.counters.refusals++;
    const detail = this.socketErrorDetail;
    this.scheduleRetry('refused', close);
    this.events.emit('error', { kind: 'refused', code: close.code, reason: close.reason, detail });
  }

  /** Gives up on the current socket without waiting for its close handshake. */
  private abandonSocket(reason: string): void {
    this.closed({ code: ABNORMAL_CLOSURE, reason });
  }

  /** Detaches and closes the current socket (when `code` is given) and stops its timers. */
  private releaseSocket(code: number | null, reason: string): void {
    const socket = this.socket;
    this.socket = null;
    this.openedAt = null;
    this.confirmed = null;
    this.heartbeat.stop();
    this.clearConnectTimer();
    if (!socket) return;
    // No-op handlers rather than null: `ws` throws for an error event nobody listens to.
    const ignore = (): void => undefined;
    socket.onopen = ignore;
    socket.onmessage = ignore;
    socket.onclose = ignore;
    socket.onerror = ignore;
    try {
      socket.close(code ?? NORMAL_CLOSURE, reason || 'abandoned');
    } catch {
      // Closing a socket that is already closing can throw in some implementations; it is gone.
    }
  }

  private scheduleRetry(event: Extract<ConnectionEvent, 'dropped' | 'refused'>, close: CloseInfo | null): void {
    const delay = this.backoff.nextDelayMs();
    const previous = this.current;
    this.current = transition(this.current, event);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      this.attempt();
    }, delay);
    this.emitState(previous, delay, close);
  }

  private cancelRetry(): void {
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== null) this.clock.clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  private move(event: ConnectionEvent, retryInMs: number | null, close: CloseInfo | null): void {
    const previous = this.current;
    this.current = transition(this.current, event);
    this.emitState(previous, retryInMs, close);
  }

  private emitState(previous: ConnectionState, retryInMs: number | null, close: CloseInfo | null): void {
    this.events.emit('state', { state: this.current, previous, retryInMs, attempt: this.backoff.attempt, close });
    if (this.current !== 'open') this.announceSubscription();
  }

  // ---------------------------------------------------------------- the filter

  private changeFilter(filter: Filter): void {
    this.filter = filter;
    const changes = this.store.retain((id, data) => matchesFilter(this.filter, id, data));
    if (this.current === 'open') this.requestSubscription();
    this.publish({ changes, streamReset: null, snapshotComplete: false, ref: null }, 'filter');
    this.announceSubscription();
  }

  /**
   * The server refused `refused` (its filter is unchanged): unless a newer filter was asked for
   * since, go back to the last accepted one, or to everything when that is the one refused.
   */
  private filterRefused(refused: Filter): void {
    if (!sameFilter(refused, this.filter)) return;
    const fallback = sameFilter(this.filter, this.accepted) ? {} : this.accepted;
    if (sameFilter(fallback, this.filter) || isEverything(refused)) return; // nothing to go back to
    this.accepted = normalizeFilter(fallback);
    this.changeFilter(copyFilter(fallback));
  }

  /** Emits `subscription` when it differs from the last one emitted. */
  private announceSubscription(): void {
    const subscription = this.subscription;
    const key = JSON.stringify([subscription.status, normalizeFilter(subscription.filter), subscription.confirmed]);
    if (key === this.announced) return;
    this.announced = key;
    this.events.emit('subscription', subscription);
  }

  // ---------------------------------------------------------------- requests

  /** Subscribe, then snapshot (unless turned off), each unless this server refused it. */
  private requestSubscription(): void {
    if (this.requests.mayUse('subscribe')) this.request('subscribe');
    if (this.options.snapshot !== false && this.requests.mayUse('snapshot')) this.request('snapshot');
  }

  /** Sends one request; false when the socket is not open. */
  private request(action: Action): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return false;
    const text =
      action === 'ping' ? pingMessage() : action === 'subscribe' ? subscribeMessage(this.filter) : snapshotMessage(this.filter);
    try {
      socket.send(text);
    } catch {
      return false; // the close event that follows handles it
    }
    const filter = action === 'ping' ? null : this.filter;
    this.requests.sent(action, action === 'snapshot' ? this.store.mark() : null, filter);
    return true;
  }

  // ---------------------------------------------------------------- receiving

  private received(data: unknown): void {
    this.counters.messages++;
    const message = parseServerMessage(decode(data));
    if ('invalid' in message) {
      this.counters.invalid++;
      this.events.emit('error', { kind: 'protocol', message: message.invalid });
      return;
    }
    this.dispatch(message);
  }

  private dispatch(message: ServerMessage): void {
    switch (message.type) {
      case 'METRICS_UPDATE':
        this.publish(this.receiver.metricsUpdate(message), 'update');
        return;
      case 'SNAPSHOT': {
        const received = this.receiver.snapshot(message, () => this.answered('snapshot')?.mark ?? null);
        this.publish(received, 'snapshot');
        return;
      }
      case 'SUBSCRIBED':
        this.confirmed = normalizeFilter(message.filter);
        this.accepted = this.confirmed;
        this.answered('subscribe');
        this.announceSubscription();
        return;
      case 'PONG': {
        this.answered('ping');
        const rtt = this.heartbeat.pong();
        if (rtt === null) return;
        this.lastRtt = rtt;
        this.events.emit('rtt', { rttMs: rtt });
        return;
      }
      case 'ERROR': {
        const failure = this.requests.failed(message.message);
        if (failure.downgraded) this.events.emit('capabilities', this.capabilities);
        if (failure.repeated) return; // e.g. every ping to a server without a ping route
        const { action, refusedFilter } = failure;
        this.events.emit('error', { kind: 'server', message: message.message, action, gateway: message.gateway, refusedFilter });
        if (action === 'subscribe' && refusedFilter) this.filterRefused(refusedFilter);
        this.announceSubscription();
        return;
      }
      case 'UNKNOWN':
        return; // new message types are additive: an older client ignores them
    }
  }

  private answered(action: Action): ReturnType<Requests['answered']> {
    const before = this.requests.capabilities[action];
    const request = this.requests.answered(action);
    if (before !== 'supported') this.events.emit('capabilities', this.capabilities);
    return request;
  }

  private publish(received: Received | null, source: ChangeSource): void {
    if (!received) return;
    if (received.streamReset) this.events.emit('stream', received.streamReset);
    for (const change of received.changes) {
      if (change.kind === 'upsert') this.events.emit('upsert', { entity: change.entity, previous: change.previous, source });
      else this.events.emit('remove', { entity: change.entity, source });
    }
    if (received.changes.length > 0 || received.snapshotComplete) {
      const { changes, snapshotComplete, ref } = received;
      this.events.emit('batch', { changes, source, snapshotComplete, ref });
    }
  }
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

let utf8: TextDecoder | undefined;

/** A frame's text: strings as they are, binary frames decoded as UTF-8. */
function decode(data: unknown): string {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    utf8 ??= new TextDecoder();
    return utf8.decode(data as ArrayBuffer);
  }
  return String(data);
}
