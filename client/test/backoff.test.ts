import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff } from '../src/backoff.js';
import { scriptedRandom } from './fakes.js';

describe('Backoff', () => {
  it('doubles the window from the base up to the cap', () => {
    const backoff = new Backoff({ baseMs: 1000, capMs: 30_000 }, () => 0);
    const windows = [0, 1, 2, 3, 4, 5, 6, 40, 1000].map((n) => backoff.windowMs(n));
    assert.deepEqual(windows, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('draws each delay uniformly from [0, window): full jitter', () => {
    const random = scriptedRandom([0, 0.5, 0.999999, 0.25]);
    const backoff = new Backoff({ baseMs: 1000, capMs: 30_000 }, random);
    const delays = [backoff.nextDelayMs(), backoff.nextDelayMs(), backoff.nextDelayMs(), backoff.nextDelayMs()];
    // windows 1000, 2000, 4000, 8000
    assert.deepEqual(delays, [0, 1000, 3999, 2000]);
    assert.equal(random.draws, 4);
    assert.equal(backoff.attempt, 4);
  });

  it('never exceeds the cap, and stays below it, however many failures', () => {
    const backoff = new Backoff({ baseMs: 500, capMs: 7000 }, () => 0.9999999);
    for (let i = 0; i < 100; i++) {
      const delay = backoff.nextDelayMs();
      assert.ok(delay >= 0 && delay < 7000, `delay ${delay} at attempt ${i}`);
    }
    assert.equal(backoff.nextDelayMs(), 6999);
  });

  it('keeps counting when a connection drops before it was stable', () => {
    const backoff = new Backoff({ baseMs: 1000, capMs: 30_000, stableAfterMs: 5000 }, () => 0.5);
    backoff.nextDelayMs();
    backoff.nextDelayMs();
    backoff.connectionEnded(4999);
    assert.equal(backoff.attempt, 2);
    assert.equal(backoff.nextDelayMs(), 2000); // window 4000
  });

  it('starts over after a connection that stayed open long enough', () => {
    const backoff = new Backoff({ baseMs: 1000, capMs: 30_000, stableAfterMs: 5000 }, () => 0.5);
    backoff.nextDelayMs();
    backoff.nextDelayMs();
    backoff.connectionEnded(5000);
    assert.equal(backoff.attempt, 0);
    assert.equal(backoff.nextDelayMs(), 500); // window 1000
  });

  it('refuses nonsense settings', () => {
    assert.throws(() => new Backoff({ baseMs: 0 }, Math.random), RangeError);
    assert.throws(() => new Backoff({ capMs: Number.NaN }, Math.random), RangeError);
    assert.throws(() => new Backoff({ baseMs: 2000, capMs: 1000 }, Math.random), RangeError);
    assert.throws(() => new Backoff({ stableAfterMs: -1 }, Math.random), RangeError);
  });
});
