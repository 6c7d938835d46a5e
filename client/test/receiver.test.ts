import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { parseServerMessage, type ServerMessage } from '../src/protocol.js';
import { Receiver } from '../src/receiver.js';
import { newStats } from '../src/stats.js';
import { EntityStore } from '../src/store.js';
import { item, metricsUpdate, snapshot, wire } from './helpers.js';

type Of<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

function parse<T extends ServerMessage['type']>(type: T, message: unknown): Of<T> {
  const parsed = parseServerMessage(JSON.stringify(message));
  assert.ok(!('invalid' in parsed) && parsed.type === type, JSON.stringify(parsed));
  return parsed as Of<T>;
}

function setup(options: { dedupeCapacity?: number } = {}) {
  const store = new EntityStore(100);
  const stats = newStats();
  const receiver = new Receiver(store, () => true, stats, {
    dedupeCapacity: options.dedupeCapacity ?? 100,
    retiredStreamCapacity: 4,
  });
  const update = (message: unknown) => receiver.metricsUpdate(parse('METRICS_UPDATE', message));
  const snap = (message: unknown, mark: number | null = null) => receiver.snapshot(parse('SNAPSHOT', message), () => mark);
  const value = (id: string) => store.entities.get(id)?.data['metric_value'];
  return { store, stats, receiver, update, snap, value };
}

describe('Receiver: duplicates', () => {
  it('drops a part whose id and part already arrived', () => {
    const { update, stats, value } = setup();
    const part1 = metricsUpdate([wire('MODIFY', 'a', undefined, { metric_value: 1 })], { id: 'b1', part: 1, parts: 2 });
    const part2 = metricsUpdate([wire('MODIFY', 'a', undefined, { metric_value: 2 })], { id: 'b1', part: 2, parts: 2 });
    assert.equal(update(part1)?.changes.length, 1);
    assert.equal(update(part2)?.changes.length, 1);
    // the same part again, with another body: a re-delivery, not news
    assert.equal(update({ ...part1, updates: [wire('MODIFY', 'a', undefined, { metric_value: 9 })] }), null);
    assert.equal(value('a'), 2);
    assert.equal(stats.duplicatesDropped, 1);
  });

  it('keeps broadcast and snapshot ids apart, and forgets the oldest past capacity', () => {
    const { update, snap } = setup({ dedupeCapacity: 2 });
    assert.notEqual(update(metricsUpdate([], { id: 'x' })), null);
    assert.notEqual(snap(snapshot([], { id: 'x' })), null);
    assert.notEqual(update(metricsUpdate([], { id: 'y' })), null); // evicts update x
    assert.notEqual(update(metricsUpdate([], { id: 'x' })), null);
    assert.equal(update(metricsUpdate([], { id: 'y' })), null);
  });

  it('applies the seed\'s messages (no id, part or sequence) in arrival order, never as duplicates', () => {
    const { update, value, stats } = setup();
    const message = metricsUpdate([wire('MODIFY', 'stream-001', undefined, { metric_value: 1234 })]);
    update(message);
    update(metricsUpdate([wire('MODIFY', 'stream-001', undefined, { metric_value: 1 })]));
    update(message);
    assert.equal(value('stream-001'), 1234);
    assert.equal(stats.duplicatesDropped, 0);
    assert.equal(stats.updatesApplied, 3);
  });

  it('counts updates it cannot apply and applies the rest', () => {
    const { update, stats, value } = setup();
    update(metricsUpdate([null, { eventType: 'MODIFY' }, { data: [] }, wire('MODIFY', 'a', '1', { metric_value: 5 })]));
    assert.equal(stats.invalid, 3);
    assert.equal(value('a'), 5);
  });
});

describe('Receiver: stream changes', () => {
  it('resets duplicate and ordering state on a new stream, keeping values', () => {
    const { update, value, stats, receiver } = setup();
    update(metricsUpdate([wire('MODIFY', 'a', '900', { metric_value: 1 })], { id: 'b1', stream: 's1' }));
    // a new stream starts numbering (and ids) again
    const result = update(metricsUpdate([wire('MODIFY', 'a', '5', { metric_value: 2 })], { id: 'b1', stream: 's2' }));
    assert.deepEqual(result?.streamReset, { from: 's1', to: 's2' });
    assert.equal(value('a'), 2);
    assert.equal(stats.streamResets, 1);
    assert.equal(receiver.stream, 's2');
    // and ordering holds within the new stream
    update(metricsUpdate([wire('MODIFY', 'a', '4', { metric_value: 3 })], { id: 'b2', stream: 's2' }));
    assert.equal(value('a'), 2);
  });

  it('keeps values through the reset: an entity not updated since is still there', () => {
    const { update, store } = setup();
    update(metricsUpdate([wire('MODIFY', 'a', '900', { metric_value: 1 })], { stream: 's1' }));
    update(metricsUpdate([wire('MODIFY', 'b', '1', { metric_value: 1 })], { stream: 's2' }));
    assert.deepEqual([...store.entities.keys()].sort(), ['a', 'b']);
  });

  it('does not reset for the first stream seen, nor for a message without one', () => {
    const { update, value, stats } = setup();
    update(metricsUpdate([wire('MODIFY', 'a', '900', { metric_value: 1 })]));
    update(metricsUpdate([wire('MODIFY', 'a', '800', { metric_value: 2 })], { stream: 's1' }));
    update(metricsUpdate([wire('MODIFY', 'a', '700', { metric_value: 3 })]));
    assert.equal(value('a'), 1);
    assert.equal(stats.streamResets, 0);
  });

  it('drops a late message of a stream already replaced', () => {
    const { update, value, stats } = setup();
    update(metricsUpdate([wire('MODIFY', 'a', '900', { metric_value: 1 })], { stream: 's1' }));
    update(metricsUpdate([wire('MODIFY', 'a', '5', { metric_value: 2 })], { stream: 's2' }));
    assert.equal(update(metricsUpdate([wire('MODIFY', 'a', '901', { metric_value: 3 })], { stream: 's1' })), null);
    assert.equal(value('a'), 2);
    assert.equal(stats.retiredStreamIgnored, 1);
    assert.equal(stats.streamResets, 1);
  });
});

describe('Receiver: snapshots and updates in either order', () => {
  it('a snapshot item older than an update already applied is ignored', () => {
    const { update, snap, value } = setup();
    update(metricsUpdate([wire('MODIFY', 'a', '20', { metric_value: 2 })]));
    snap(snapshot([item('a', '10', { metric_value: 1 })], { id: 's', part: 1, parts: 1 }));
    assert.equal(value('a'), 2);
  });

  it('an update older than the snapshot item is ignored', () => {
    const { update, snap, value } = setup();
    snap(snapshot([item('a', '20', { metric_value: 2 })], { id: 's', part: 1, parts: 1 }));
    update(metricsUpdate([wire('MODIFY', 'a', '10', { metric_value: 1 })]));
    assert.equal(value('a'), 2);
  });

  it('a snapshot does not resurrect an entity removed after it was taken', () => {
    const { update, snap, store } = setup();
    update(metricsUpdate([wire('REMOVE', 'a', '30')]));
    snap(snapshot([item('a', '20', { metric_value: 2 })]));
    assert.equal(store.entities.has('a'), false);
  });

  it('a complete snapshot removes what it no longer contains, unless changed since the request', () => {
    const { update, snap, store, stats } = setup();
    update(metricsUpdate([wire('MODIFY', 'gone', '1'), wire('MODIFY', 'kept', '1')]));
    const mark = store.mark();
    update(metricsUpdate([wire('INSERT', 'fresh', '2')]));
    const first = snap(snapshot([item('kept', '1')], { id: 'snap', part: 1, parts: 2 }), mark);
    assert.equal(first?.snapshotComplete, false);
    assert.ok(store.entities.has('gone'), 'nothing pruned before the last part');
    const last = snap(snapshot([item('other', '1')], { id: 'snap', part: 2, parts: 2 }), mark);
    assert.equal(last?.snapshotComplete, true);
    assert.deepEqual(last?.changes.filter((c) => c.kind === 'remove').map((c) => c.entity.id), ['gone']);
    assert.deepEqual([...store.entities.keys()].sort(), ['fresh', 'kept', 'other']);
    assert.equal(stats.snapshotsCompleted, 1);
  });

  it('an unrequested snapshot prunes nothing', () => {
    const { update, snap, store } = setup();
    update(metricsUpdate([wire('MODIFY', 'a', '1')]));
    snap(snapshot([item('b', '1')]), null);
    assert.deepEqual([...store.entities.keys()].sort(), ['a', 'b']);
  });
});
