// @iops-dashboard/client, bundled for the dashboard page. GENERATED from client/src by
// `npm run bundle` in client/: do not edit (client/test.sh fails when this file is stale).

// src/backoff.ts
var DEFAULT_BASE_MS = 4e3;
var DEFAULT_CAP_MS = 3e4;
var DEFAULT_STABLE_AFTER_MS = 5e3;
var Backoff = class {
  constructor(options, random) {
    this.random = random;
    /** Consecutive failures since the last connection that stayed open long enough. */
    this.failures = 0;
    this.baseMs = positive(options.baseMs, DEFAULT_BASE_MS, "baseMs");
    this.capMs = positive(options.capMs, DEFAULT_CAP_MS, "capMs");
    this.stableAfterMs = nonNegative(options.stableAfterMs, DEFAULT_STABLE_AFTER_MS, "stableAfterMs");
    if (this.capMs < this.baseMs) throw new RangeError("backoff: capMs must be at least baseMs");
  }
  /** The number of consecutive failures counted so far. */
  get attempt() {
    return this.failures;
  }
  /** The upper bound of the window for the `attempt`-th retry. */
  windowMs(attempt) {
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(attempt, 31));
  }
  /** Draws the delay before the next retry and counts the failure. */
  nextDelayMs() {
    const delay = Math.floor(this.random() * this.windowMs(this.failures));
    this.failures++;
    return delay;
  }
  /** A connection that was open for `openForMs` ended: only a stable one forgives the past. */
  connectionEnded(openForMs) {
    if (openForMs >= this.stableAfterMs) this.failures = 0;
  }
  /** Starts over, e.g. when the user asks to connect again. */
  reset() {
    this.failures = 0;
  }
};
function positive(value, fallback, name) {
  if (value === void 0) return fallback;
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`backoff: ${name} must be a positive number`);
  return value;
}
function nonNegative(value, fallback, name) {
  if (value === void 0) return fallback;
  if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`backoff: ${name} must be a non-negative number`);
  return value;
}

// src/emitter.ts
var Emitter = class {
  constructor() {
    this.listeners = /* @__PURE__ */ new Map();
  }
  on(type, listener) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => this.off(type, listener);
  }
  off(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }
  /**
   * Calls every listener of `type`. A listener that throws must not leave the client half-way
   * through a state change, so its error is rethrown on a fresh stack (the host's
   * uncaught-error reporting sees it) and the other listeners still run.
   */
  emit(type, payload) {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
  clear() {
    this.listeners.clear();
  }
};

// src/env.ts
var OPEN = 1;
var systemClock = {
  // A monotonic clock where there is one: RTTs and "stayed open long enough" must not jump
  // with wall-clock adjustments.
  now: () => typeof performance !== "undefined" ? performance.now() : Date.now(),
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle)
};
function globalWebSocket() {
  const candidate = globalThis.WebSocket;
  return typeof candidate === "function" ? candidate : void 0;
}

// src/filter.ts
function matchesFilter(filter, id, data) {
  const types = filter.entityTypes ?? [];
  const ids = filter.entityIds ?? [];
  if (types.length === 0 && ids.length === 0) return true;
  if (ids.includes(id)) return true;
  const type = data["entity_type"];
  return typeof type === "string" && types.includes(type);
}
function copyFilter(filter) {
  const copy = {};
  if (filter?.entityTypes) copy.entityTypes = Object.freeze([...filter.entityTypes]);
  if (filter?.entityIds) copy.entityIds = Object.freeze([...filter.entityIds]);
  return copy;
}
function normalizeFilter(filter) {
  const normalized = {};
  const types = normalizedList(filter.entityTypes);
  const ids = normalizedList(filter.entityIds);
  if (types) normalized.entityTypes = types;
  if (ids) normalized.entityIds = ids;
  return normalized;
}
function sameFilter(a, b) {
  const x = normalizeFilter(a);
  const y = normalizeFilter(b);
  return sameList(x.entityTypes, y.entityTypes) && sameList(x.entityIds, y.entityIds);
}
function isEverything(filter) {
  return (filter.entityTypes?.length ?? 0) === 0 && (filter.entityIds?.length ?? 0) === 0;
}
function normalizedList(values) {
  if (!values || values.length === 0) return void 0;
  return Object.freeze([...new Set(values)].sort());
}
function sameList(a, b) {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((value, i) => value === y[i]);
}

// src/heartbeat.ts
var Heartbeat = class {
  constructor(clock, intervalMs, hooks) {
    this.clock = clock;
    this.intervalMs = intervalMs;
    this.hooks = hooks;
    this.timer = null;
    this.sentAt = null;
    this.answered = false;
    if (!(Number.isFinite(intervalMs) && intervalMs > 0)) throw new RangeError("pingIntervalMs must be a positive number");
  }
  /** Starts pinging a freshly opened connection. */
  start() {
    this.stop();
    this.answered = false;
    this.tick();
  }
  stop() {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.sentAt = null;
  }
  /** A PONG arrived: the round trip of the ping it answers, if one was waiting. */
  pong() {
    this.answered = true;
    if (this.sentAt === null) return null;
    const rtt = this.clock.now() - this.sentAt;
    this.sentAt = null;
    return rtt;
  }
  tick() {
    this.timer = null;
    if (this.sentAt !== null && this.answered) {
      this.sentAt = null;
      this.hooks.dead();
      return;
    }
    this.sentAt = this.hooks.sendPing() ? this.clock.now() : null;
    this.timer = this.clock.setTimeout(() => this.tick(), this.intervalMs);
  }
};

// src/sequence.ts
var DIGITS = /^\d+$/;
function parseSequence(value) {
  if (typeof value === "number") {
    return Number.isSafeInteger(value) && value >= 0 ? String(value) : null;
  }
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (!DIGITS.test(text)) return null;
  return text.replace(/^0+(?=\d)/, "");
}
function compareSequences(a, b) {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

// src/protocol.ts
function parseServerMessage(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { invalid: `not JSON: ${text.slice(0, 80)}` };
  }
  if (!isObject(value)) return { invalid: "not a JSON object" };
  switch (value["type"]) {
    case "METRICS_UPDATE":
      return { type: "METRICS_UPDATE", ref: partRef(value), stream: stream(value), updates: list(value["updates"]) };
    case "SNAPSHOT":
      return { type: "SNAPSHOT", ref: partRef(value), stream: stream(value), items: list(value["items"]) };
    case "SUBSCRIBED":
      return { type: "SUBSCRIBED", filter: echoedFilter(value) };
    case "PONG":
      return { type: "PONG" };
    case "ERROR":
      return { type: "ERROR", message: errorText(value["message"]), gateway: false };
    case void 0:
      if (typeof value["message"] === "string") return { type: "ERROR", message: value["message"], gateway: true };
      return { invalid: 'message without a "type"' };
    default:
      return { type: "UNKNOWN", name: String(value["type"]) };
  }
}
function parseUpdate(value) {
  if (!isObject(value)) return null;
  const data = value["data"];
  if (!isObject(data)) return null;
  const eventType = value["eventType"];
  return {
    // The seed always sent one; anything else is treated as a change, as the page did.
    eventType: eventType === "INSERT" || eventType === "REMOVE" ? eventType : "MODIFY",
    sequence: parseSequence(value["sequence"]),
    timestamp: typeof value["timestamp"] === "number" && Number.isFinite(value["timestamp"]) ? value["timestamp"] : null,
    data,
    truncated: data["truncated"] === true
  };
}
function parseSnapshotItem(value) {
  const update = parseUpdate(value);
  return update && { ...update, eventType: "INSERT" };
}
function pingMessage() {
  return JSON.stringify({ action: "ping" });
}
function subscribeMessage(filter) {
  return JSON.stringify({ action: "subscribe", ...filterFields(filter) });
}
function snapshotMessage(filter) {
  const fields = filterFields(filter);
  return JSON.stringify({ action: "snapshot", ...Object.keys(fields).length > 0 ? fields : { entityTypes: [] } });
}
function filterFields(filter) {
  const fields = {};
  if (filter.entityTypes && filter.entityTypes.length > 0) fields.entityTypes = [...filter.entityTypes];
  if (filter.entityIds && filter.entityIds.length > 0) fields.entityIds = [...filter.entityIds];
  return fields;
}
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function list(value) {
  return Array.isArray(value) ? value : [];
}
function stream(message) {
  const value = message["stream"];
  return typeof value === "string" && value !== "" ? value : null;
}
function partRef(message) {
  const id = message["id"];
  if (typeof id !== "string" && typeof id !== "number") return null;
  return { id: String(id), part: positiveInt(message["part"]) ?? 1, parts: positiveInt(message["parts"]) };
}
function positiveInt(value) {
  return typeof value === "number" && Number.isInteger(value) && value > 0 ? value : null;
}
function echoedFilter(message) {
  const filter = {};
  const types = strings(message["entityTypes"]);
  const ids = strings(message["entityIds"]);
  if (types.length > 0) filter.entityTypes = types;
  if (ids.length > 0) filter.entityIds = ids;
  return filter;
}
function strings(value) {
  return Array.isArray(value) ? value.filter((v) => typeof v === "string") : [];
}
function errorText(value) {
  if (typeof value === "string") return value;
  return value === void 0 || value === null ? "unknown error" : JSON.stringify(value);
}

// src/bounded.ts
var BoundedSet = class {
  constructor(capacity) {
    this.capacity = capacity;
    this.items = /* @__PURE__ */ new Set();
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError("capacity must be a positive integer");
  }
  has(item) {
    return this.items.has(item);
  }
  add(item) {
    this.items.delete(item);
    this.items.add(item);
    if (this.items.size > this.capacity) this.items.delete(this.items.values().next().value);
  }
  get size() {
    return this.items.size;
  }
  clear() {
    this.items.clear();
  }
};
var BoundedMap = class {
  constructor(capacity) {
    this.capacity = capacity;
    this.entries = /* @__PURE__ */ new Map();
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError("capacity must be a positive integer");
  }
  get(key) {
    return this.entries.get(key);
  }
  set(key, value) {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value);
  }
  delete(key) {
    this.entries.delete(key);
  }
  get size() {
    return this.entries.size;
  }
  clear() {
    this.entries.clear();
  }
};

// src/dedupe.ts
var PartDedupe = class {
  /** `capacity`: how many parts are remembered (the oldest are forgotten first). */
  constructor(capacity) {
    this.seen = new BoundedSet(capacity);
  }
  /**
   * True when `id`/`part` of `kind` arrived before; otherwise remembers it and returns false.
   * `kind` keeps broadcast ids and snapshot ids apart.
   */
  isDuplicate(kind, id, part) {
    const key = `${kind}\0${id}\0${part}`;
    if (this.seen.has(key)) return true;
    this.seen.add(key);
    return false;
  }
  clear() {
    this.seen.clear();
  }
};

// src/store.ts
var EntityStore = class {
  constructor(tombstoneCapacity) {
    this.current = /* @__PURE__ */ new Map();
    /** Ordering state, kept apart from the entities so that a stream reset can drop it alone. */
    this.sequences = /* @__PURE__ */ new Map();
    /** When each entity last changed, in store generations (see `mark`). */
    this.touched = /* @__PURE__ */ new Map();
    this.generation = 0;
    this.tombstones = new BoundedMap(tombstoneCapacity);
  }
  /** The entities, by id. */
  get entities() {
    return this.current;
  }
  apply(update, accept) {
    const id = entityKey(update.data);
    if (id === null) return { status: "invalid" };
    const existing = this.current.get(id);
    if (update.sequence !== null) {
      const last = existing ? this.sequences.get(id) : this.tombstones.get(id);
      if (last !== void 0 && compareSequences(update.sequence, last) <= 0) return { status: "stale" };
    }
    if (update.eventType === "REMOVE") return this.remove(id, existing, update.sequence);
    const data = update.truncated && existing ? existing.data : update.data;
    if (!accept(id, data)) {
      if (!existing) return { status: "filtered" };
      this.forget(id);
      return { status: "applied", change: { kind: "remove", entity: existing } };
    }
    this.tombstones.delete(id);
    if (update.sequence !== null) this.sequences.set(id, update.sequence);
    const entity = {
      id,
      data,
      sequence: update.sequence ?? existing?.sequence ?? null,
      eventType: update.eventType,
      timestamp: update.timestamp,
      truncated: update.truncated
    };
    this.current.set(id, entity);
    this.touched.set(id, ++this.generation);
    return { status: "applied", change: { kind: "upsert", entity, previous: existing } };
  }
  /**
   * Forgets every sequence and tombstone, keeping the entities: a new stream numbers its
   * records from scratch, so its first updates must not look older than the last stream's.
   */
  resetOrdering() {
    this.sequences.clear();
    this.tombstones.clear();
  }
  /** A point in time: entities changed after it have a later generation. */
  mark() {
    return this.generation;
  }
  /**
   * Removes the entities not changed since `mark` whose ids are not in `keep` (what a complete
   * snapshot taken after `mark` did not contain has gone while this client was not looking).
   */
  pruneUnchangedSince(mark, keep) {
    return this.removeWhere((entity) => !keep.has(entity.id) && (this.touched.get(entity.id) ?? 0) <= mark);
  }
  /** Removes the entities `accept` no longer accepts (after a filter change). */
  retain(accept) {
    return this.removeWhere((entity) => !accept(entity.id, entity.data));
  }
  remove(id, existing, sequence) {
    const tombstone = sequence ?? this.sequences.get(id) ?? null;
    if (tombstone !== null) this.tombstones.set(id, tombstone);
    if (!existing) return { status: "applied", change: null };
    this.forget(id);
    return { status: "applied", change: { kind: "remove", entity: existing } };
  }
  removeWhere(predicate) {
    const changes = [];
    for (const entity of [...this.current.values()]) {
      if (!predicate(entity)) continue;
      this.forget(entity.id);
      changes.push({ kind: "remove", entity });
    }
    return changes;
  }
  forget(id) {
    this.current.delete(id);
    this.sequences.delete(id);
    this.touched.delete(id);
  }
};
function entityKey(data) {
  const key = data["entity_id"];
  if (typeof key === "string" && key !== "") return key;
  if (typeof key === "number" && Number.isFinite(key)) return String(key);
  for (const [name, value] of Object.entries(data)) {
    if (name !== "truncated" && name !== "entity_id" && typeof value === "string" && value !== "") return value;
  }
  return null;
}

// src/stream.ts
var StreamTracker = class {
  constructor(retiredCapacity) {
    this.label = null;
    this.retired = new BoundedSet(retiredCapacity);
  }
  /** The current stream's label, once one was seen. */
  get current() {
    return this.label;
  }
  follow(stream2) {
    if (stream2 === null || stream2 === this.label) return "same";
    if (this.retired.has(stream2)) return "retired";
    const previous = this.label;
    this.label = stream2;
    if (previous === null) return "first";
    this.retired.add(previous);
    return "reset";
  }
};

// src/receiver.ts
var MAX_ASSEMBLIES = 4;
var Receiver = class {
  constructor(store, accept, stats, options) {
    this.store = store;
    this.accept = accept;
    this.stats = stats;
    this.assemblies = /* @__PURE__ */ new Map();
    this.dedupe = new PartDedupe(options.dedupeCapacity);
    this.streams = new StreamTracker(options.retiredStreamCapacity);
  }
  /** The label of the stream updates currently come from. */
  get stream() {
    return this.streams.current;
  }
  /** A new connection: snapshots of the previous one will never complete. */
  connectionOpened() {
    this.assemblies.clear();
  }
  /** The changes a METRICS_UPDATE makes; null when the whole message is dropped. */
  metricsUpdate(message) {
    const streamReset = this.enter("update", message.ref, message.stream);
    if (streamReset === false) return null;
    const changes = [];
    for (const raw of message.updates) this.applyOne(parseUpdate(raw), changes);
    return { changes, streamReset, snapshotComplete: false, ref: message.ref };
  }
  /**
   * The changes a SNAPSHOT part makes; null when the whole message is dropped. `claimMark`
   * gives the store mark of the request this snapshot answers (called once per snapshot id).
   */
  snapshot(message, claimMark) {
    const streamReset = this.enter("snapshot", message.ref, message.stream);
    if (streamReset === false) return null;
    const assembly = this.assembly(message.ref, claimMark);
    const changes = [];
    for (const raw of message.items) {
      const item = parseSnapshotItem(raw);
      const id = item && entityKey(item.data);
      if (id !== null && id !== void 0) assembly.ids.add(id);
      this.applyOne(item, changes);
    }
    assembly.parts.add(message.ref?.part ?? 1);
    const snapshotComplete = assembly.parts.size >= assembly.total;
    if (snapshotComplete) {
      this.assemblies.delete(message.ref?.id ?? "");
      this.stats.snapshotsCompleted++;
      if (assembly.mark !== null) changes.push(...this.store.pruneUnchangedSince(assembly.mark, assembly.ids));
    }
    return { changes, streamReset, snapshotComplete, ref: message.ref };
  }
  /**
   * Follows the message's stream and drops a duplicate part. Returns false to drop the
   * message, else the stream reset it caused (or null).
   */
  enter(kind, ref, stream2) {
    const previous = this.streams.current;
    const followed = this.streams.follow(stream2);
    if (followed === "retired") {
      this.stats.retiredStreamIgnored++;
      return false;
    }
    let reset = null;
    if (followed === "reset" && previous !== null && stream2 !== null) {
      this.dedupe.clear();
      this.store.resetOrdering();
      this.stats.streamResets++;
      reset = { from: previous, to: stream2 };
    }
    if (ref && this.dedupe.isDuplicate(kind, ref.id, ref.part)) {
      this.stats.duplicatesDropped++;
      return false;
    }
    return reset;
  }
  assembly(ref, claimMark) {
    const key = ref?.id ?? "";
    let assembly = this.assemblies.get(key);
    if (!assembly) {
      assembly = { mark: claimMark(), parts: /* @__PURE__ */ new Set(), total: ref?.parts ?? 1, ids: /* @__PURE__ */ new Set() };
      this.assemblies.set(key, assembly);
      if (this.assemblies.size > MAX_ASSEMBLIES) this.assemblies.delete(this.assemblies.keys().next().value);
    }
    return assembly;
  }
  applyOne(update, changes) {
    if (update === null) {
      this.stats.invalid++;
      return;
    }
    if (update.truncated) this.stats.truncated++;
    const applied = this.store.apply(update, this.accept);
    switch (applied.status) {
      case "applied":
        this.stats.updatesApplied++;
        if (applied.change) changes.push(applied.change);
        return;
      case "stale":
        this.stats.staleIgnored++;
        return;
      case "filtered":
        this.stats.filtered++;
        return;
      case "invalid":
        this.stats.invalid++;
        return;
    }
  }
};

// src/requests.ts
var ACTIONS = ["subscribe", "snapshot", "ping"];
var MAX_PENDING = 32;
var Requests = class {
  constructor() {
    this.pending = [];
    this.support = unknownSupport();
  }
  /** A new connection: nothing is waiting, nothing is known. */
  reset() {
    this.pending = [];
    this.support = unknownSupport();
  }
  get capabilities() {
    return this.support;
  }
  /** False once the server refused `action` on this connection. */
  mayUse(action) {
    return this.support[action] !== "unsupported";
  }
  sent(action, mark = null, filter = null) {
    this.pending.push({ action, mark, filter });
    if (this.pending.length > MAX_PENDING) this.pending.shift();
  }
  /** A reply for `action` arrived: the oldest such request is answered. */
  answered(action) {
    this.support[action] = "supported";
    const index = this.pending.findIndex((p) => p.action === action);
    return index < 0 ? void 0 : this.pending.splice(index, 1)[0];
  }
  /** An ERROR (or API Gateway's error) arrived: which request did it answer? */
  failed(message) {
    if (isAboutTheFilter(message)) {
      const request2 = this.takeOldest(FILTERED);
      if (request2) {
        this.support[request2.action] = "supported";
        return { action: request2.action, downgraded: false, repeated: false, refusedFilter: request2.filter ?? {} };
      }
    }
    const request = this.takeNamedIn(message) ?? this.pending.shift();
    if (!request) return { action: void 0, downgraded: false, repeated: false, refusedFilter: null };
    const before = this.support[request.action];
    if (before === "unknown") this.support[request.action] = "unsupported";
    return {
      action: request.action,
      downgraded: before === "unknown",
      repeated: before === "unsupported",
      refusedFilter: null
    };
  }
  /** The oldest waiting request of one of `actions`. */
  takeOldest(actions) {
    const index = this.pending.findIndex((p) => actions.includes(p.action));
    return index < 0 ? void 0 : this.pending.splice(index, 1)[0];
  }
  /** The waiting request whose action the message names, quoted first ("subscribe"). */
  takeNamedIn(message) {
    const waiting = ACTIONS.filter((a) => this.pending.some((p) => p.action === a));
    const named = waiting.find((a) => message.includes(`"${a}"`)) ?? waiting.find((a) => new RegExp(`\\b${a}\\b`).test(message));
    if (named === void 0) return void 0;
    const index = this.pending.findIndex((p) => p.action === named);
    return this.pending.splice(index, 1)[0];
  }
};
var FILTERED = ["subscribe", "snapshot"];
function isAboutTheFilter(message) {
  return /\bfilter\b/i.test(message);
}
function unknownSupport() {
  return { subscribe: "unknown", snapshot: "unknown", ping: "unknown" };
}

// src/state.ts
var MOVES = {
  idle: { connect: "connecting", close: "closed" },
  connecting: { opened: "open", refused: "refused", dropped: "reconnecting", close: "closed" },
  open: { dropped: "reconnecting", close: "closed" },
  reconnecting: { connect: "connecting", close: "closed" },
  refused: { connect: "connecting", close: "closed" },
  closed: { connect: "connecting", close: "closed" }
};
function transition(state, event) {
  const next = MOVES[state][event];
  if (next === void 0) throw new Error(`connection state machine: no move from ${state} on ${event}`);
  return next;
}

// src/stats.ts
function newStats() {
  return {
    messages: 0,
    updatesApplied: 0,
    duplicatesDropped: 0,
    staleIgnored: 0,
    filtered: 0,
    invalid: 0,
    truncated: 0,
    streamResets: 0,
    retiredStreamIgnored: 0,
    snapshotsCompleted: 0,
    attempts: 0,
    opens: 0,
    refusals: 0
  };
}

// src/client.ts
var NORMAL_CLOSURE = 1e3;
var ABNORMAL_CLOSURE = 1006;
var MetricsClient = class {
  constructor(options) {
    this.events = new Emitter();
    this.requests = new Requests();
    this.counters = newStats();
    /** The server's SUBSCRIBED echo on the current connection; null before one. */
    this.confirmed = null;
    /** The last subscription announced, to announce only changes. */
    this.announced = "";
    this.current = "idle";
    this.socket = null;
    /** Bumped for every attempt and by close(): callbacks of older attempts are ignored. */
    this.attemptId = 0;
    this.openedAt = null;
    this.retryTimer = null;
    this.connectTimer = null;
    /** What the socket's error event said (`ws` says why a handshake failed; browsers do not). */
    this.socketErrorDetail = null;
    this.lastRtt = null;
    const WebSocketImpl = options.WebSocket ?? globalWebSocket();
    if (!WebSocketImpl) {
      throw new TypeError("MetricsClient: no global WebSocket here; pass options.WebSocket (on Node 20: the ws package)");
    }
    this.options = options;
    this.WebSocketImpl = WebSocketImpl;
    this.clock = options.clock ?? systemClock;
    this.filter = copyFilter(options.filter);
    this.accepted = normalizeFilter(this.filter);
    this.backoff = new Backoff(options.backoff ?? {}, options.random ?? Math.random);
    this.heartbeat = new Heartbeat(this.clock, options.pingIntervalMs ?? 6e4, {
      sendPing: () => this.request("ping"),
      dead: () => this.abandonSocket("heartbeat: no PONG within the ping interval")
    });
    this.store = new EntityStore(options.tombstoneCapacity ?? 1e4);
    this.receiver = new Receiver(this.store, (id, data) => matchesFilter(this.filter, id, data), this.counters, {
      dedupeCapacity: options.dedupeCapacity ?? 1e3,
      retiredStreamCapacity: options.retiredStreamCapacity ?? 16
    });
  }
  // ---------------------------------------------------------------- public API
  on(type, listener) {
    return this.events.on(type, listener);
  }
  off(type, listener) {
    this.events.off(type, listener);
  }
  get state() {
    return this.current;
  }
  /** The entities currently shown, by id (live view: read it, do not keep it across events). */
  get entities() {
    return this.store.entities;
  }
  /** A copy of the counters. */
  get stats() {
    return { ...this.counters };
  }
  /** What the server supports on the current connection. */
  get capabilities() {
    return { ...this.requests.capabilities };
  }
  /** The last measured round trip, ms (null before the first PONG). */
  get rttMs() {
    return this.lastRtt;
  }
  /** The label of the stream updates come from (null until a message names one). */
  get stream() {
    return this.receiver.stream;
  }
  get currentFilter() {
    return copyFilter(this.filter);
  }
  /** What the client asks for and what the server has confirmed. */
  get subscription() {
    const filter = copyFilter(this.filter);
    const confirmed = this.confirmed && copyFilter(this.confirmed);
    if (this.current !== "open") return { filter, status: "offline", confirmed };
    if (this.requests.capabilities.subscribe === "unsupported") return { filter, status: "unsupported", confirmed };
    const status = confirmed !== null && sameFilter(confirmed, filter) ? "confirmed" : "pending";
    return { filter, status, confirmed };
  }
  /**
   * Starts connecting. From `idle` or `closed` the backoff starts over; while a retry is
   * scheduled, it tries now; while connecting or open, it does nothing.
   */
  connect() {
    if (this.current === "connecting" || this.current === "open") return;
    if (this.current === "idle" || this.current === "closed") this.backoff.reset();
    this.cancelRetry();
    this.attempt();
  }
  /** Stops everything: the socket, the heartbeat, any scheduled retry. Entities stay readable. */
  close() {
    if (this.current === "closed") return;
    this.attemptId++;
    this.cancelRetry();
    this.releaseSocket(NORMAL_CLOSURE, "client closed");
    this.move("close", null, null);
  }
  /**
   * Changes what to receive: entities outside the new filter are removed at once, and on an
   * open connection the subscription and a snapshot are requested again (the snapshot brings
   * what the new filter adds). When the server refuses the filter (ERROR, reported as an
   * `error` with `refusedFilter`), its filter stays as it was, and the client goes back to the
   * last filter the server accepted (to everything when that is the one refused), subscribes
   * with it again and takes a snapshot.
   */
  setFilter(filter) {
    this.changeFilter(copyFilter(filter));
  }
  // ---------------------------------------------------------------- connecting
  attempt() {
    const id = ++this.attemptId;
    this.counters.attempts++;
    this.move("connect", null, null);
    if (id !== this.attemptId) return;
    let token;
    try {
      token = this.tokenFor();
    } catch (error) {
      this.tokenFailed(id, error);
      return;
    }
    if (isPromiseLike(token)) {
      token.then(
        (value) => this.openSocket(id, value),
        (error) => this.tokenFailed(id, error)
      );
    } else {
      this.openSocket(id, token);
    }
  }
  tokenFor() {
    const token = this.options.token;
    return typeof token === "function" ? token() : token;
  }
  /** `id`: the attempt the token was for; a listener or the provider may have closed us since. */
  tokenFailed(id, error) {
    if (id !== this.attemptId) return;
    this.scheduleRetry("dropped", null);
    this.events.emit("error", { kind: "token", error });
  }
  openSocket(id, token) {
    if (id !== this.attemptId) return;
    let socket;
    try {
      const { url, protocols } = this.endpoint(token);
      socket = protocols ? new this.WebSocketImpl(url, protocols) : new this.WebSocketImpl(url);
      socket.binaryType = "arraybuffer";
    } catch (error) {
      this.attemptId++;
      this.move("close", null, null);
      this.events.emit("error", { kind: "config", error });
      return;
    }
    this.socket = socket;
    this.socketErrorDetail = null;
    socket.onopen = () => this.socket === socket && this.opened();
    socket.onmessage = (event) => this.socket === socket && this.received(event.data);
    socket.onclose = (event) => this.socket === socket && this.closed(event);
    socket.onerror = (event) => {
      if (this.socket !== socket) return;
      const message = event?.message;
      if (typeof message === "string" && message !== "") this.socketErrorDetail = message;
    };
    const timeoutMs = this.options.connectTimeoutMs ?? 15e3;
    this.connectTimer = this.clock.setTimeout(() => {
      this.connectTimer = null;
      if (id === this.attemptId && this.current === "connecting") this.abandonSocket(`no open within ${timeoutMs} ms`);
    }, timeoutMs);
  }
  /** The URL and subprotocols carrying `token`. */
  endpoint(token) {
    if (!token) return { url: this.options.url, protocols: null };
    if (this.options.tokenIn === "query") {
      const url = new URL(this.options.url);
      url.searchParams.set("token", token);
      return { url: url.toString(), protocols: null };
    }
    return { url: this.options.url, protocols: [token] };
  }
  opened() {
    this.clearConnectTimer();
    this.openedAt = this.clock.now();
    this.counters.opens++;
    this.requests.reset();
    this.confirmed = null;
    this.receiver.connectionOpened();
    this.current = transition(this.current, "opened");
    this.requestSubscription();
    this.heartbeat.start();
    this.emitState("connecting", null, null);
    this.events.emit("capabilities", this.capabilities);
    this.announceSubscription();
  }
  closed(event) {
    const wasOpen = this.openedAt !== null;
    const openFor = wasOpen ? this.clock.now() - this.openedAt : 0;
    this.releaseSocket(null, "");
    const close = { code: event.code, reason: event.reason };
    if (wasOpen) {
      this.backoff.connectionEnded(openFor);
      this.scheduleRetry("dropped", close);
      return;
    }
    this.counters.refusals++;
    const detail = this.socketErrorDetail;
    this.scheduleRetry("refused", close);
    this.events.emit("error", { kind: "refused", code: close.code, reason: close.reason, detail });
  }
  /** Gives up on the current socket without waiting for its close handshake. */
  abandonSocket(reason) {
    this.closed({ code: ABNORMAL_CLOSURE, reason });
  }
  /** Detaches and closes the current socket (when `code` is given) and stops its timers. */
  releaseSocket(code, reason) {
    const socket = this.socket;
    this.socket = null;
    this.openedAt = null;
    this.confirmed = null;
    this.heartbeat.stop();
    this.clearConnectTimer();
    if (!socket) return;
    const ignore = () => void 0;
    socket.onopen = ignore;
    socket.onmessage = ignore;
    socket.onclose = ignore;
    socket.onerror = ignore;
    try {
      socket.close(code ?? NORMAL_CLOSURE, reason || "abandoned");
    } catch {
    }
  }
  scheduleRetry(event, close) {
    const delay = this.backoff.nextDelayMs();
    const previous = this.current;
    this.current = transition(this.current, event);
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      this.attempt();
    }, delay);
    this.emitState(previous, delay, close);
  }
  cancelRetry() {
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
  clearConnectTimer() {
    if (this.connectTimer !== null) this.clock.clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }
  move(event, retryInMs, close) {
    const previous = this.current;
    this.current = transition(this.current, event);
    this.emitState(previous, retryInMs, close);
  }
  emitState(previous, retryInMs, close) {
    this.events.emit("state", { state: this.current, previous, retryInMs, attempt: this.backoff.attempt, close });
    if (this.current !== "open") this.announceSubscription();
  }
  // ---------------------------------------------------------------- the filter
  changeFilter(filter) {
    this.filter = filter;
    const changes = this.store.retain((id, data) => matchesFilter(this.filter, id, data));
    if (this.current === "open") this.requestSubscription();
    this.publish({ changes, streamReset: null, snapshotComplete: false, ref: null }, "filter");
    this.announceSubscription();
  }
  /**
   * The server refused `refused` (its filter is unchanged): unless a newer filter was asked for
   * since, go back to the last accepted one, or to everything when that is the one refused.
   */
  filterRefused(refused) {
    if (!sameFilter(refused, this.filter)) return;
    const fallback = sameFilter(this.filter, this.accepted) ? {} : this.accepted;
    if (sameFilter(fallback, this.filter) || isEverything(refused)) return;
    this.accepted = normalizeFilter(fallback);
    this.changeFilter(copyFilter(fallback));
  }
  /** Emits `subscription` when it differs from the last one emitted. */
  announceSubscription() {
    const subscription = this.subscription;
    const key = JSON.stringify([subscription.status, normalizeFilter(subscription.filter), subscription.confirmed]);
    if (key === this.announced) return;
    this.announced = key;
    this.events.emit("subscription", subscription);
  }
  // ---------------------------------------------------------------- requests
  /** Subscribe, then snapshot (unless turned off), each unless this server refused it. */
  requestSubscription() {
    if (this.requests.mayUse("subscribe")) this.request("subscribe");
    if (this.options.snapshot !== false && this.requests.mayUse("snapshot")) this.request("snapshot");
  }
  /** Sends one request; false when the socket is not open. */
  request(action) {
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) return false;
    const text = action === "ping" ? pingMessage() : action === "subscribe" ? subscribeMessage(this.filter) : snapshotMessage(this.filter);
    try {
      socket.send(text);
    } catch {
      return false;
    }
    const filter = action === "ping" ? null : this.filter;
    this.requests.sent(action, action === "snapshot" ? this.store.mark() : null, filter);
    return true;
  }
  // ---------------------------------------------------------------- receiving
  received(data) {
    this.counters.messages++;
    const message = parseServerMessage(decode(data));
    if ("invalid" in message) {
      this.counters.invalid++;
      this.events.emit("error", { kind: "protocol", message: message.invalid });
      return;
    }
    this.dispatch(message);
  }
  dispatch(message) {
    switch (message.type) {
      case "METRICS_UPDATE":
        this.publish(this.receiver.metricsUpdate(message), "update");
        return;
      case "SNAPSHOT": {
        const received = this.receiver.snapshot(message, () => this.answered("snapshot")?.mark ?? null);
        this.publish(received, "snapshot");
        return;
      }
      case "SUBSCRIBED":
        this.confirmed = normalizeFilter(message.filter);
        this.accepted = this.confirmed;
        this.answered("subscribe");
        this.announceSubscription();
        return;
      case "PONG": {
        this.answered("ping");
        const rtt = this.heartbeat.pong();
        if (rtt === null) return;
        this.lastRtt = rtt;
        this.events.emit("rtt", { rttMs: rtt });
        return;
      }
      case "ERROR": {
        const failure = this.requests.failed(message.message);
        if (failure.downgraded) this.events.emit("capabilities", this.capabilities);
        if (failure.repeated) return;
        const { action, refusedFilter } = failure;
        this.events.emit("error", { kind: "server", message: message.message, action, gateway: message.gateway, refusedFilter });
        if (action === "subscribe" && refusedFilter) this.filterRefused(refusedFilter);
        this.announceSubscription();
        return;
      }
      case "UNKNOWN":
        return;
    }
  }
  answered(action) {
    const before = this.requests.capabilities[action];
    const request = this.requests.answered(action);
    if (before !== "supported") this.events.emit("capabilities", this.capabilities);
    return request;
  }
  publish(received, source) {
    if (!received) return;
    if (received.streamReset) this.events.emit("stream", received.streamReset);
    for (const change of received.changes) {
      if (change.kind === "upsert") this.events.emit("upsert", { entity: change.entity, previous: change.previous, source });
      else this.events.emit("remove", { entity: change.entity, source });
    }
    if (received.changes.length > 0 || received.snapshotComplete) {
      const { changes, snapshotComplete, ref } = received;
      this.events.emit("batch", { changes, source, snapshotComplete, ref });
    }
  }
};
function isPromiseLike(value) {
  return typeof value?.then === "function";
}
var utf8;
function decode(data) {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    utf8 ?? (utf8 = new TextDecoder());
    return utf8.decode(data);
  }
  return String(data);
}
export {
  MetricsClient,
  compareSequences,
  parseSequence
};
