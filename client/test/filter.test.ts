import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { isEverything, matchesFilter, normalizeFilter, sameFilter } from '../src/filter.js';
import { parseServerMessage } from '../src/protocol.js';

describe('filters, as the server matches them', () => {
  const disk1 = { entity_id: 'disk-1', entity_type: 'disk' };
  const stream2 = { entity_id: 'stream-2', entity_type: 'stream' };

  it('match an entity whose type or id they name; no lists (or empty ones) match everything', () => {
    const filter = { entityTypes: ['disk'], entityIds: ['stream-2'] };
    assert.equal(matchesFilter(filter, 'disk-1', disk1), true);
    assert.equal(matchesFilter(filter, 'stream-2', stream2), true);
    assert.equal(matchesFilter(filter, 'stream-1', { entity_id: 'stream-1', entity_type: 'stream' }), false);
    assert.equal(matchesFilter({ entityIds: ['a'] }, 'b', { entity_id: 'b', entity_type: 'stream' }), false);
    assert.equal(matchesFilter({ entityTypes: ['disk'] }, 'x', { entity_id: 'x' }), false, 'no type: no type match');
    assert.equal(matchesFilter({}, 'x', {}), true);
    assert.equal(matchesFilter({ entityTypes: [], entityIds: [] }, 'x', {}), true);
  });

  it('normalize as the server echoes them: sorted, no repeats, no empty lists', () => {
    assert.deepEqual(normalizeFilter({ entityTypes: ['stream', 'disk', 'stream'], entityIds: [] }), {
      entityTypes: ['disk', 'stream'],
    });
    assert.equal(sameFilter({ entityIds: ['b', 'a', 'a'] }, { entityIds: ['a', 'b'], entityTypes: [] }), true);
    assert.equal(sameFilter({ entityIds: ['a'] }, { entityTypes: ['a'] }), false);
    assert.equal(sameFilter({}, { entityTypes: [] }), true);
    assert.equal(isEverything({ entityTypes: [] }), true);
    assert.equal(isEverything({ entityIds: ['a'] }), false);
  });

  it('SUBSCRIBED carries the filter in force; a bare one is everything', () => {
    assert.deepEqual(parseServerMessage('{"type":"SUBSCRIBED","entityTypes":["disk"],"entityIds":["a",1]}'), {
      type: 'SUBSCRIBED',
      filter: { entityTypes: ['disk'], entityIds: ['a'] },
    });
    assert.deepEqual(parseServerMessage('{"type":"SUBSCRIBED"}'), { type: 'SUBSCRIBED', filter: {} });
  });
});
