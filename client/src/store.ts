/**
 * The entities a dashboard shows, and the newer-of rule that keeps each at its latest value
 * whatever order updates and snapshot items arrive in.
 *
 * Per entity the store remembers the sequence of the last change it applied (and, for removed
 * entities, a bounded set of tombstones), and ignores a change whose sequence is not newer. An
 * equal sequence is the same stream record delivered again. A change without a sequence (the
 * seed's messages) is applied in arrival order.
 */

import { BoundedMap } from './bounded.js';
import type { EventType, Update } from './protocol.js';
import { compareSequences, type Sequence } from './sequence.js';

/** An entity as last applied. Immutable: every change makes a new object. */
export interface Entity {
  readonly id: string;
  /** The item image (for a truncated record: the last full image known, if any). */
  readonly data: Readonly<Record<string, unknown>>;
  /** The sequence of the change that produced it; null when the server sent none. */
  readonly sequence: string | null;
  readonly eventType: EventType;
  /** When the change happened (epoch ms), as the server said; null when it did not. */
  readonly timestamp: number | null;
  /** The last record was too large to send: only its keys arrived. */
  readonly truncated: boolean;
}

export type Change =
  | { kind: 'upsert'; entity: Entity; previous: Entity | undefined }
  | { kind: 'remove'; entity: Entity };

/** What `apply` did with one update. */
export type Applied =
  | { status: 'applied'; change: Change | null }
  /** Not newer than what the entity (or its tombstone) already has. */
  | { status: 'stale' }
  /** Outside the filter; nothing to show. */
  | { status: 'filtered' }
  /** No entity key in the image. */
  | { status: 'invalid' };

export type Accept = (id: string, data: Record<string, unknown>) => boolean;

export class EntityStore {
  private readonly current = new Map<string, Entity>();
  /** Ordering state, kept apart from the entities so that a stream reset can drop it alone. */
  private readonly sequences = new Map<string, Sequence>();
  private readonly tombstones: BoundedMap<string, Sequence>;
  /** When each entity last changed, in store generations (see `mark`). */
  private readonly touched = new Map<string, number>();
  private generation = 0;

  constructor(tombstoneCapacity: number) {
    this.tombstones = new BoundedMap(tombstoneCapacity);
  }

  /** The entities, by id. */
  get entities(): ReadonlyMap<string, Entity> {
    return this.current;
  }

  apply(update: Update, accept: Accept): Applied {
    const id = entityKey(update.data);
    if (id === null) return { status: 'invalid' };
    const existing = this.current.get(id);
    if (update.sequence !== null) {
      const last = existing ? this.sequences.get(id) : this.tombstones.get(id);
      if (last !== undefined && compareSequences(update.sequence, last) <= 0) return { status: 'stale' };
    }
    if (update.eventType === 'REMOVE') return this.remove(id, existing, update.sequence);

    // A truncated record carries only the keys: keep showing the last full image.
    const data = update.truncated && existing ? existing.data : update.data;
    if (!accept(id, data)) {
      if (!existing) return { status: 'filtered' };
      this.forget(id);
      return { status: 'applied', change: { kind: 'remove', entity: existing } };
    }
    this.tombstones.delete(id);
    if (update.sequence !== null) this.sequences.set(id, update.sequence);
    const entity: Entity = {
      id,
      data,
      sequence: update.sequence ?? existing?.sequence ?? null,
      eventType: update.eventType,
      timestamp: update.timestamp,
      truncated: update.truncated,
    };
    this.current.set(id, entity);
    this.touched.set(id, ++this.generation);
    return { status: 'applied', change: { kind: 'upsert', entity, previous: existing } };
  }

  /**
   * Forgets every sequence and tombstone, keeping the entities: a new stream numbers its
   * records from scratch, so its first updates must not look older than the last stream's.
   */
  resetOrdering(): void {
    this.sequences.clear();
    this.tombstones.clear();
  }

  /** A point in time: entities changed after it have a later generation. */
  mark(): number {
    return this.generation;
  }

  /**
   * Removes the entities not changed since `mark` whose ids are not in `keep` (what a complete
   * snapshot taken after `mark` did not contain has gone while this client was not looking).
   */
  pruneUnchangedSince(mark: number, keep: ReadonlySet<string>): Change[] {
    return this.removeWhere((entity) => !keep.has(entity.id) && (this.touched.get(entity.id) ?? 0) <= mark);
  }

  /** Removes the entities `accept` no longer accepts (after a filter change). */
  retain(accept: Accept): Change[] {
    return this.removeWhere((entity) => !accept(entity.id, entity.data as Record<string, unknown>));
  }

  private remove(id: string, existing: Entity | undefined, sequence: Sequence | null): Applied {
    // Without a sequence of its own, a REMOVE still outranks what the entity had.
    const tombstone = sequence ?? this.sequences.get(id) ?? null;
    if (tombstone !== null) this.tombstones.set(id, tombstone);
    if (!existing) return { status: 'applied', change: null };
    this.forget(id);
    return { status: 'applied', change: { kind: 'remove', entity: existing } };
  }

  private removeWhere(predicate: (entity: Entity) => boolean): Change[] {
    const changes: Change[] = [];
    for (const entity of [...this.current.values()]) {
      if (!predicate(entity)) continue;
      this.forget(entity.id);
      changes.push({ kind: 'remove', entity });
    }
    return changes;
  }

  private forget(id: string): void {
    this.current.delete(id);
    this.sequences.delete(id);
    this.touched.delete(id);
  }
}

/**
 * The entity's id: `entity_id` (the metrics table's key), else the first string attribute,
 * as the dashboard page has always done for tables keyed otherwise.
 */
export function entityKey(data: Record<string, unknown>): string | null {
  const key = data['entity_id'];
  if (typeof key === 'string' && key !== '') return key;
  if (typeof key === 'number' && Number.isFinite(key)) return String(key);
  for (const [name, value] of Object.entries(data)) {
    if (name !== 'truncated' && name !== 'entity_id' && typeof value === 'string' && value !== '') return value;
  }
  return null;
}
