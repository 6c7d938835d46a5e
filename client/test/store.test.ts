import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { EntityStore, entityKey, type Applied } from '../src/store.js';
import { update } from './helpers.js';

const all = (): boolean => true;

function value(store: EntityStore, id: string): unknown {
  return store.entities.get(id)?.data['metric_value'];
}

function status(applied: Applied): string {
  return applied.status;
}

describe('EntityStore: newer-of by sequence', () => {
  it('applies a newer sequence and ignores an older or equal one', () => {
    const store = new EntityStore(100);
    assert.equal(status(store.apply(update('INSERT', 'a', '100', { metric_value: 1 }), all)), 'applied');
    assert.equal(status(store.apply(update('MODIFY', 'a', '99', { metric_value: 2 }), all)), 'stale');
    assert.equal(status(store.apply(update('MODIFY', 'a', '100', { metric_value: 3 }), all)), 'stale');
    assert.equal(value(store, 'a'), 1);
    assert.equal(status(store.apply(update('MODIFY', 'a', '1000', { metric_value: 4 }), all)), 'applied');
    assert.equal(value(store, 'a'), 4);
    assert.equal(store.entities.get('a')?.sequence, '1000');
  });

  it('compares long sequences digit by digit', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', '4000000000000000000002', { metric_value: 1 }), all);
    assert.equal(status(store.apply(update('MODIFY', 'a', '4000000000000000000001', { metric_value: 2 }), all)), 'stale');
    assert.equal(status(store.apply(update('MODIFY', 'a', '4000000000000000000003', { metric_value: 3 }), all)), 'applied');
    assert.equal(value(store, 'a'), 3);
  });

  it('applies updates without a sequence in arrival order (the seed)', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', null, { metric_value: 1 }), all);
    store.apply(update('MODIFY', 'a', null, { metric_value: 2 }), all);
    assert.equal(value(store, 'a'), 2);
    assert.equal(store.entities.get('a')?.sequence, null);
  });

  it('keeps entities independent', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', '500', { metric_value: 1 }), all);
    assert.equal(status(store.apply(update('INSERT', 'b', '10', { metric_value: 2 }), all)), 'applied');
    assert.deepEqual([...store.entities.keys()], ['a', 'b']);
  });
});

describe('EntityStore: REMOVE and tombstones', () => {
  it('does not let an older INSERT arriving late resurrect a removed entity', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', '10', { metric_value: 1 }), all);
    const removed = store.apply(update('REMOVE', 'a', '30'), all);
    assert.equal(removed.status === 'applied' && removed.change?.kind, 'remove');
    assert.equal(status(store.apply(update('INSERT', 'a', '20', { metric_value: 2 }), all)), 'stale');
    assert.equal(store.entities.has('a'), false);
    // a genuinely newer INSERT brings it back
    assert.equal(status(store.apply(update('INSERT', 'a', '31', { metric_value: 3 }), all)), 'applied');
    assert.equal(value(store, 'a'), 3);
  });

  it('tombstones a REMOVE that arrives before the entity was ever seen', () => {
    const store = new EntityStore(100);
    const removed = store.apply(update('REMOVE', 'a', '30'), all);
    assert.deepEqual(removed, { status: 'applied', change: null });
    assert.equal(status(store.apply(update('INSERT', 'a', '29', { metric_value: 1 }), all)), 'stale');
    assert.equal(store.entities.size, 0);
  });

  it('tombstones a REMOVE without a sequence at the entity\'s last sequence', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', '10', { metric_value: 1 }), all);
    store.apply(update('REMOVE', 'a', null), all);
    assert.equal(status(store.apply(update('MODIFY', 'a', '9', { metric_value: 2 }), all)), 'stale');
    assert.equal(status(store.apply(update('MODIFY', 'a', '11', { metric_value: 3 }), all)), 'applied');
  });

  it('remembers a bounded number of tombstones, the oldest forgotten first', () => {
    const store = new EntityStore(2);
    for (const id of ['a', 'b', 'c']) store.apply(update('REMOVE', id, '50'), all);
    assert.equal(status(store.apply(update('INSERT', 'a', '1'), all)), 'applied'); // forgotten
    assert.equal(status(store.apply(update('INSERT', 'c', '1'), all)), 'stale'); // remembered
  });
});

describe('EntityStore: reset, truncation, filter, pruning', () => {
  it('resetOrdering forgets sequences and tombstones but keeps values', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', '900', { metric_value: 1 }), all);
    store.apply(update('REMOVE', 'b', '900'), all);
    store.resetOrdering();
    assert.equal(value(store, 'a'), 1);
    assert.equal(status(store.apply(update('MODIFY', 'a', '5', { metric_value: 2 }), all)), 'applied');
    assert.equal(status(store.apply(update('INSERT', 'b', '5', { metric_value: 3 }), all)), 'applied');
    assert.equal(value(store, 'a'), 2);
  });

  it('keeps the last full image when a record arrives truncated', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'a', '1', { metric_value: 7, entity_type: 'disk' }), all);
    store.apply(update('MODIFY', 'a', '2', { truncated: true }), all);
    const entity = store.entities.get('a');
    assert.equal(entity?.data['metric_value'], 7);
    assert.equal(entity?.truncated, true);
    assert.equal(entity?.sequence, '2');
  });

  it('drops what the filter rejects, and removes an entity that leaves it', () => {
    const store = new EntityStore(100);
    const disks = (_id: string, data: Record<string, unknown>): boolean => data['entity_type'] === 'disk';
    assert.equal(status(store.apply(update('INSERT', 's', '1', { entity_type: 'stream' }), disks)), 'filtered');
    store.apply(update('INSERT', 'd', '1', { entity_type: 'disk' }), disks);
    const moved = store.apply(update('MODIFY', 'd', '2', { entity_type: 'stream' }), disks);
    assert.equal(moved.status === 'applied' && moved.change?.kind, 'remove');
    assert.equal(store.entities.size, 0);
  });

  it('prunes entities unchanged since a mark and absent from a set', () => {
    const store = new EntityStore(100);
    store.apply(update('INSERT', 'old', '1'), all);
    store.apply(update('INSERT', 'kept', '1'), all);
    const mark = store.mark();
    store.apply(update('INSERT', 'new', '1'), all);
    const removed = store.pruneUnchangedSince(mark, new Set(['kept']));
    assert.deepEqual(removed.map((c) => c.entity.id), ['old']);
    assert.deepEqual([...store.entities.keys()].sort(), ['kept', 'new']);
  });

  it('finds the entity key: entity_id, else the first string attribute', () => {
    assert.equal(entityKey({ entity_id: 'x', name: 'y' }), 'x');
    assert.equal(entityKey({ entity_id: 12 }), '12');
    assert.equal(entityKey({ value: 3, host: 'h1', entity_id: '' }), 'h1');
    assert.equal(entityKey({ value: 3 }), null);
  });
});
