import { describe, expect, it } from 'vitest';
import { backoffDelays } from '../../src/client/index.js';
import { seededRandom } from '../../src/bench/stats.js';


describe('backoffDelays', () => {
  const options = { minDelayMs: 100, maxDelayMs: 5000, factor: 2, jitter: 0.5 };

  it('grows the ceiling exponentially and caps it at maxDelayMs', () => {
    const highest = backoffDelays({ ...options, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6, 7, 20, 5000].map(highest)).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  });

  it('keeps every equal-jitter delay within [ceiling / 2, ceiling], never above maxDelayMs', () => {
    const delayFor = backoffDelays(options, seededRandom(1));
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(5000, 100 * 2 ** (attempt - 1));
      for (let sample = 0; sample < 500; sample++) {
        const delay = delayFor(attempt);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('uses the extremes of `random` as the bounds of the range', () => {
    expect(backoffDelays(options, () => 0)(3)).toBe(200);
    expect(backoffDelays(options, () => 0.999999)(3)).toBeCloseTo(400, 2);
    expect(backoffDelays({ ...options, jitter: 1 }, () => 0)(3)).toBe(0);
  });

  it('has mean ceiling * (1 - jitter / 2) and spreads over the whole range', () => {
    for (const jitter of [1, 0.5, 0.2]) {
      const delayFor = backoffDelays({ ...options, jitter }, seededRandom(42));
      const samples = Array.from({ length: 20_000 }, () => delayFor(4));
      const mean = samples.reduce((sum, delay) => sum + delay, 0) / samples.length;
      const ceiling = 800;
      expect(mean).toBeGreaterThan(ceiling * (1 - jitter / 2) * 0.98);
      expect(mean).toBeLessThan(ceiling * (1 - jitter / 2) * 1.02);
      expect(Math.min(...samples)).toBeLessThan(ceiling * (1 - jitter) + ceiling * jitter * 0.01);
      expect(Math.max(...samples)).toBeGreaterThan(ceiling - ceiling * jitter * 0.01);
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
    }
  });

  it('defaults to Math.random with sensible bounds', () => {
    const delayFor = backoffDelays();
    for (let attempt = 1; attempt < 40; attempt++) {
      const delay = delayFor(attempt);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(30_000);
    }
  });

  it('is always zero when minDelayMs is zero', () => {
    expect(backoffDelays({ minDelayMs: 0, maxDelayMs: 0 })(1000)).toBe(0);
  });

  it('rejects invalid options with precise messages', () => {
    expect(() => backoffDelays({ maxDelayMs: -1 })).toThrow('Expected `maxDelayMs` to be a non-negative number, got -1');
    expect(() => backoffDelays({ minDelayMs: Number.NaN })).toThrow('Expected `minDelayMs` to be a non-negative number, got NaN');
    expect(() => backoffDelays({ minDelayMs: 10, maxDelayMs: 5 })).toThrow('Expected `maxDelayMs` (5) to be >= `minDelayMs` (10)');
    expect(() => backoffDelays({ factor: 0.5 })).toThrow('Expected `factor` to be a number >= 1, got 0.5');
    expect(() => backoffDelays({ jitter: 2 })).toThrow('Expected `jitter` to be a number from 0 to 1, got 2');
    expect(() => backoffDelays(options)(0)).toThrow('Expected `attempt` to be an integer >= 1, got 0');
  });
});
