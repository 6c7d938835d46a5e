/** Counters a dashboard can show or log; they only ever grow (until the client is dropped). */
export interface ClientStats {
  /** Frames received. */
  messages: number;
  /** Updates and snapshot items applied to an entity. */
  updatesApplied: number;
  /** Parts dropped because their `id`/`part` had already arrived. */
  duplicatesDropped: number;
  /** Updates and snapshot items ignored as not newer than what the entity had. */
  staleIgnored: number;
  /** Updates outside the filter (the server did not filter, or not yet). */
  filtered: number;
  /** Frames and updates that could not be understood. */
  invalid: number;
  /** Updates that arrived as keys only (`"truncated": true`). */
  truncated: number;
  /** Times a new `stream` reset the ordering state. */
  streamResets: number;
  /** Messages dropped because they came from a stream already replaced. */
  retiredStreamIgnored: number;
  /** Snapshots received whole. */
  snapshotsCompleted: number;
  /** Sockets opened by the client (attempts). */
  attempts: number;
  /** Attempts that opened. */
  opens: number;
  /** Attempts that closed before they opened. */
  refusals: number;
}

export function newStats(): ClientStats {
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
    refusals: 0,
  };
}
