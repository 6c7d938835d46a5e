import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { compareSequences, parseSequence, type Sequence } from '../src/index.js';

const seq = (text: string): Sequence => {
  const parsed = parseSequence(text);
  assert.ok(parsed !== null, text);
  return parsed;
};

describe('sequences', () => {
  it('compares decimal strings of different lengths by value', () => {
    assert.ok(compareSequences(seq('99'), seq('100')) < 0);
    assert.ok(compareSequences(seq('100'), seq('99')) > 0);
    assert.equal(compareSequences(seq('4000000000000000000001'), seq('4000000000000000000001')), 0);
  });

  it('keeps every digit past Number precision', () => {
    // These two are the same Number (both round to 2^53 + 0), but not the same sequence.
    const a = '9007199254740993';
    const b = '9007199254740992';
    assert.equal(Number(a), Number(b));
    assert.ok(compareSequences(seq(a), seq(b)) > 0);
    const big = '111111111111111111111111111111111111112';
    assert.ok(compareSequences(seq(big), seq('111111111111111111111111111111111111111')) > 0);
  });

  it('ignores leading zeros and surrounding blanks', () => {
    assert.equal(parseSequence('000123'), '123');
    assert.equal(parseSequence(' 42 '), '42');
    assert.equal(parseSequence('0000'), '0');
    assert.equal(compareSequences(seq('0100'), seq('100')), 0);
  });

  it('takes exact integers as numbers, and nothing else', () => {
    assert.equal(parseSequence(17), '17');
    for (const bad of [1.5, -1, 2 ** 60, Number.NaN, '', '12a', '-5', '1e5', null, undefined, {}, []]) {
      assert.equal(parseSequence(bad), null, String(bad));
    }
  });
});
