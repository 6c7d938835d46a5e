/**
 * Insertion-ordered collections with a capacity: past it the oldest entry goes. Memory stays
 * bounded however long a dashboard stays open.
 */

export class BoundedSet<T> {
  private readonly items = new Set<T>();

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError('capacity must be a positive integer');
  }

  has(item: T): boolean {
    return this.items.has(item);
  }

  add(item: T): void {
    this.items.delete(item); // re-adding makes it the newest
    this.items.add(item);
    if (this.items.size > this.capacity) this.items.delete(this.items.values().next().value as T);
  }

  get size(): number {
    return this.items.size;
  }

  clear(): void {
    this.items.clear();
  }
}

export class BoundedMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError('capacity must be a positive integer');
  }

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as K);
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
