import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Requests } from '../src/requests.js';
import { transition } from '../src/state.js';

describe('Requests: which request an ERROR answers', () => {
  it('the one the message quotes, even when it names others unquoted', () => {
    const requests = new Requests();
    requests.sent('subscribe');
    requests.sent('ping');
    const failure = requests.failed('unknown action "ping"; supported actions: subscribe, snapshot');
    assert.deepEqual(failure, { action: 'ping', downgraded: true, repeated: false, refusedFilter: null });
    assert.equal(requests.capabilities.subscribe, 'unknown');
  });

  it('else the one it names, else the oldest waiting', () => {
    const requests = new Requests();
    requests.sent('subscribe');
    requests.sent('snapshot');
    assert.equal(requests.failed('snapshot is not available').action, 'snapshot');
    assert.equal(requests.failed('Forbidden').action, 'subscribe');
    assert.deepEqual(requests.failed('Forbidden'), { action: undefined, downgraded: false, repeated: false, refusedFilter: null });
  });

  it('an error after a success is about that request, not about support', () => {
    const requests = new Requests();
    requests.sent('subscribe');
    requests.answered('subscribe');
    requests.sent('subscribe');
    assert.deepEqual(requests.failed('the subscription could not be changed; try again'), {
      action: 'subscribe',
      downgraded: false,
      repeated: false,
      refusedFilter: null,
    });
    assert.equal(requests.mayUse('subscribe'), true);
  });

  it('an error about the filter refuses that subscribe or snapshot, never marks it unsupported', () => {
    const requests = new Requests();
    requests.sent('ping');
    requests.sent('subscribe', null, { entityTypes: ['snapshot'] });
    requests.sent('snapshot', 4, { entityTypes: ['snapshot'] });
    const message = 'invalid filter (the filter is unchanged): this connection may not receive entity types ["snapshot"]';
    assert.deepEqual(requests.failed(message), {
      action: 'subscribe',
      downgraded: false,
      repeated: false,
      refusedFilter: { entityTypes: ['snapshot'] },
    });
    assert.equal(requests.capabilities.subscribe, 'supported');
    assert.equal(requests.failed(message).action, 'snapshot');
    assert.equal(requests.capabilities.snapshot, 'supported');
    // with no subscribe or snapshot waiting it is an ordinary error
    assert.deepEqual(requests.failed(message), { action: 'ping', downgraded: true, repeated: false, refusedFilter: null });
  });

  it('an error that is not about the filter still downgrades an action not known to work', () => {
    const requests = new Requests();
    requests.sent('snapshot', 1, {});
    assert.equal(requests.failed('the snapshot could not be sent: snapshots are not enabled on this stage').downgraded, true);
    assert.equal(requests.mayUse('snapshot'), false);
  });

  it('hands back the snapshot request\'s mark, oldest first, and forgets all on reset', () => {
    const requests = new Requests();
    requests.sent('snapshot', 3);
    requests.sent('snapshot', 7);
    assert.equal(requests.answered('snapshot')?.mark, 3);
    requests.reset();
    assert.equal(requests.answered('snapshot'), undefined);
  });
});

describe('connection state machine', () => {
  it('has the moves the client needs', () => {
    assert.equal(transition('idle', 'connect'), 'connecting');
    assert.equal(transition('connecting', 'opened'), 'open');
    assert.equal(transition('connecting', 'refused'), 'refused');
    assert.equal(transition('connecting', 'dropped'), 'reconnecting');
    assert.equal(transition('open', 'dropped'), 'reconnecting');
    assert.equal(transition('refused', 'connect'), 'connecting');
    assert.equal(transition('closed', 'connect'), 'connecting');
    for (const state of ['idle', 'connecting', 'open', 'reconnecting', 'refused', 'closed'] as const) {
      assert.equal(transition(state, 'close'), 'closed');
    }
  });

  it('refuses moves that cannot happen', () => {
    assert.throws(() => transition('closed', 'opened'), /no move from closed on opened/);
    assert.throws(() => transition('open', 'refused'));
    assert.throws(() => transition('reconnecting', 'opened'));
    assert.throws(() => transition('idle', 'dropped'));
  });
});
