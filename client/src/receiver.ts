/**
 * Turns METRICS_UPDATE and SNAPSHOT messages into entity changes: follows the stream, drops
 * duplicate parts, applies each update or item to the store under the newer-of rule, and
 * prunes what a complete snapshot no longer contains.
 */

import { PartDedupe } from './dedupe.js';
import { parseSnapshotItem, parseUpdate, type PartRef, type ServerMessage, type Update } from './protocol.js';
import type { ClientStats } from './stats.js';
import { entityKey, type Accept, type Change, type EntityStore } from './store.js';
import { StreamTracker } from './stream.js';

export interface ReceiverOptions {
  /** Parts remembered for duplicate detection. */
  dedupeCapacity: number;
  /** Labels of replaced streams remembered (their late messages are dropped). */
  retiredStreamCapacity: number;
}

export interface Received {
  changes: Change[];
  /** Set when this message's stream replaced the previous one. */
  streamReset: { from: string; to: string } | null;
  /** Set when this message completed a snapshot. */
  snapshotComplete: boolean;
  /** The message's `id`/`part`/`parts`; null for the seed's messages (and filter changes). */
  ref: PartRef | null;
}

type MetricsUpdate = Extract<ServerMessage, { type: 'METRICS_UPDATE' }>;
type Snapshot = Extract<ServerMessage, { type: 'SNAPSHOT' }>;

/** A snapshot whose parts are still arriving. */
interface Assembly {
  /** The store's mark when it was requested; null for one nobody asked for (no pruning). */
  mark: number | null;
  parts: Set<number>;
  total: number;
  ids: Set<string>;
}

/** Incomplete snapshots kept at once; an older one that never completes is dropped. */
const MAX_ASSEMBLIES = 4;

export class Receiver {
  private readonly dedupe: PartDedupe;
  private readonly streams: StreamTracker;
  private readonly assemblies = new Map<string, Assembly>();

  constructor(
    private readonly store: EntityStore,
    private readonly accept: Accept,
    private readonly stats: ClientStats,
    options: ReceiverOptions,
  ) {
    this.dedupe = new PartDedupe(options.dedupeCapacity);
    this.streams = new StreamTracker(options.retiredStreamCapacity);
  }

  /** The label of the stream updates currently come from. */
  get stream(): string | null {
    return this.streams.current;
  }

  /** A new connection: snapshots of the previous one will never complete. */
  connectionOpened(): void {
    this.assemblies.clear();
  }

  /** The changes a METRICS_UPDATE makes; null when the whole message is dropped. */
  metricsUpdate(message: MetricsUpdate): Received | null {
    const streamReset = this.enter('update', message.ref, message.stream);
    if (streamReset === false) return null;
    const changes: Change[] = [];
    for (const raw of message.updates) this.applyOne(parseUpdate(raw), changes);
    return { changes, streamReset, snapshotComplete: false, ref: message.ref };
  }

  /**
   * The changes a SNAPSHOT part makes; null when the whole message is dropped. `claimMark`
   * gives the store mark of the request this snapshot answers (called once per snapshot id).
   */
  snapshot(message: Snapshot, claimMark: () => number | null): Received | null {
    const streamReset = this.enter('snapshot', message.ref, message.stream);
    if (streamReset === false) return null;
    const assembly = this.assembly(message.ref, claimMark);
    const changes: Change[] = [];
    for (const raw of message.items) {
      const item = parseSnapshotItem(raw);
      const id = item && entityKey(item.data);
      if (id !== null && id !== undefined) assembly.ids.add(id);
      this.applyOne(item, changes);
    }
    assembly.parts.add(message.ref?.part ?? 1);
    const snapshotComplete = assembly.parts.size >= assembly.total;
    if (snapshotComplete) {
      this.assemblies.delete(message.ref?.id ?? '');
      this.stats.snapshotsCompleted++;
      if (assembly.mark !== null) changes.push(...this.store.pruneUnchangedSince(assembly.mark, assembly.ids));
    }
    return { changes, streamReset, snapshotComplete, ref: message.ref };
  }

  /**
   * Follows the message's stream and drops a duplicate part. Returns false to drop the
   * message, else the stream reset it caused (or null).
   */
  private enter(kind: string, ref: PartRef | null, stream: string | null): Received['streamReset'] | false {
    const previous = this.streams.current;
    const followed = this.streams.follow(stream);
    if (followed === 'retired') {
      this.stats.retiredStreamIgnored++;
      return false;
    }
    let reset: Received['streamReset'] = null;
    if (followed === 'reset' && previous !== null && stream !== null) {
      this.dedupe.clear();
      this.store.resetOrdering();
      this.stats.streamResets++;
      reset = { from: previous, to: stream };
    }
    if (ref && this.dedupe.isDuplicate(kind, ref.id, ref.part)) {
      this.stats.duplicatesDropped++;
      return false;
    }
    return reset;
  }

  private assembly(ref: PartRef | null, claimMark: () => number | null): Assembly {
    const key = ref?.id ?? '';
    let assembly = this.assemblies.get(key);
    if (!assembly) {
      assembly = { mark: claimMark(), parts: new Set(), total: ref?.parts ?? 1, ids: new Set() };
      this.assemblies.set(key, assembly);
      if (this.assemblies.size > MAX_ASSEMBLIES) this.assemblies.delete(this.assemblies.keys().next().value as string);
    }
    return assembly;
  }

  private applyOne(update: Update | null, changes: Change[]): void {
    if (update === null) {
      this.stats.invalid++;
      return;
    }
    if (update.truncated) this.stats.truncated++;
    const applied = this.store.apply(update, this.accept);
    switch (applied.status) {
      case 'applied':
        this.stats.updatesApplied++;
        if (applied.change) changes.push(applied.change);
        return;
      case 'stale':
        this.stats.staleIgnored++;
        return;
      case 'filtered':
        this.stats.filtered++;
        return;
      case 'invalid':
        this.stats.invalid++;
        return;
    }
  }
}
