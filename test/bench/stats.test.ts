import { describe, expect, it } from 'vitest';
import { percentile, publishSchedule, ratio, seededRandom, summarizeLatencies } from '../../src/bench/stats.js';

describe('load tester statistics', () => {
  it('uses nearest-rank percentiles: every figure is a sample that happened', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(samples, 0.5)).toBe(50);
    expect(percentile(samples, 0.95)).toBe(95);
    expect(percentile(samples, 0.99)).toBe(99);
    expect(percentile(samples, 1)).toBe(100);
    expect(percentile(samples, 0)).toBe(1);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([1, 2, 3], 0.5)).toBe(2);
    expect(Number.isNaN(percentile([], 0.5))).toBe(true);
    expect(() => percentile(samples, 1.5)).toThrow(/between 0 and 1/);
  });

  it('summarizes unsorted samples without reordering the caller’s array', () => {
    const samples = [30, 10, 20, 40];
    const summary = summarizeLatencies(samples);
    expect(summary).toMatchObject({ count: 4, p50: 20, p95: 40, p99: 40, max: 40, mean: 25 });
    expect(samples).toEqual([30, 10, 20, 40]);
    expect(summarizeLatencies([]).count).toBe(0);
  });

  it('reports a ratio of nothing delivered as null, not 0', () => {
    expect(ratio(10, 4)).toBe(2.5);
    expect(ratio(10, 0)).toBeNull();
  });

  it('gives every mode the same publish schedule for one seed', () => {
    const a = publishSchedule({ rate: 20, durationS: 2, clients: 7, seed: 3 });
    const b = publishSchedule({ rate: 20, durationS: 2, clients: 7, seed: 3 });
    const c = publishSchedule({ rate: 20, durationS: 2, clients: 7, seed: 4 });
    expect(a).toHaveLength(40);
    expect(a).toEqual(b);
    expect(a.map((x) => x.client)).not.toEqual(c.map((x) => x.client));
    expect(a[1]!.atMs).toBe(50);
    expect(a.every((x) => x.client >= 0 && x.client < 7)).toBe(true);
    // A duration computed as messages / rate yields exactly that many messages.
    for (const messages of [3, 29, 113, 10_000]) expect(publishSchedule({ rate: 20_000, durationS: messages / 20_000, clients: 7, seed: 3 })).toHaveLength(messages);
    const random = seededRandom(1);
    const values = Array.from({ length: 1000 }, random);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
  });
});
