import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Backoff } from '../src/backoff.js';
import { scriptedRandom } from './fakes.js';

/** A seeded uniform [0, 1) source (mulberry32), so that a crowd's draws are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The most delays that fall in any 1-second window (sliding, not aligned to whole seconds). */
function peakPerSecond(delays: number[]): number {
  const sorted = [...delays].sort((a, b) => a - b);
  let peak = 0;
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    while ((sorted[hi] as number) - (sorted[lo] as number) >= 1000) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return peak;
}

/** The first retry delay of each of `n` clients that lost the same server at the same moment. */
function firstRetries(n: number, options: ConstructorParameters<typeof Backoff>[0], seed: number): number[] {
  const random = seeded(seed);
  return Array.from({ length: n }, () => new Backoff(options, random).nextDelayMs());
}

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

  it('defaults to a 4 s first window doubling to a 30 s cap, reset after 5 s open', () => {
    const backoff = new Backoff({}, () => 0.5);
    assert.deepEqual([0, 1, 2, 3, 4].map((n) => backoff.windowMs(n)), [4000, 8000, 16_000, 30_000, 30_000]);
    assert.equal(backoff.stableAfterMs, 5000);
  });

  it('spreads 1,000 clients that lose the server at once under 500 new connections/s by default', () => {
    // API Gateway's quota: 500 new connections per second per account and Region. With the
    // defaults, 1,000 first retries come at about 250/s; a 1 s window (the old default) would
    // bring about 1,000 in one second.
    for (const seed of [1, 2, 3, 4, 5]) {
      const delays = firstRetries(1000, {}, seed);
      assert.ok(Math.max(...delays) < 4000);
      const peak = peakPerSecond(delays);
      assert.ok(peak < 350, `seed ${seed}: ${peak} first retries in one second`);
    }
    assert.ok(peakPerSecond(firstRetries(1000, { baseMs: 1000 }, 1)) > 900);
  });

  it('refuses nonsense settings', () => {
    assert.throws(() => new Backoff({ baseMs: 0 }, Math.random), RangeError);
    assert.throws(() => new Backoff({ capMs: Number.NaN }, Math.random), RangeError);
    assert.throws(() => new Backoff({ baseMs: 2000, capMs: 1000 }, Math.random), RangeError);
    assert.throws(() => new Backoff({ stableAfterMs: -1 }, Math.random), RangeError);
  });
});
