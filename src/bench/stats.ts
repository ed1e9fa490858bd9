/** Latency and rate arithmetic for the load tester: pure functions, no I/O. */

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * Nearest-rank percentile of an ascending array: the smallest sample such that at least `q` of
 * all samples are ≤ it. No interpolation, so every reported figure is a latency that happened.
 */
export function percentile(sortedAscending: readonly number[], q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError('Expected `q` to be between 0 and 1');
  if (sortedAscending.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sortedAscending.length));
  return sortedAscending[rank - 1]!;
}

export function summarizeLatencies(samples: readonly number[]): LatencySummary {
  if (samples.length === 0) return { count: 0, p50: Number.NaN, p95: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN };
  const sorted = Float64Array.from(samples).sort();
  const asArray = Array.from(sorted);
  let sum = 0;
  for (const value of asArray) sum += value;
  return {
    count: asArray.length,
    p50: percentile(asArray, 0.5),
    p95: percentile(asArray, 0.95),
    p99: percentile(asArray, 0.99),
    max: asArray[asArray.length - 1]!,
    mean: sum / asArray.length,
  };
}

/** `numerator / denominator`, or null when nothing was delivered (a ratio of nothing is not 0). */
export function ratio(numerator: number, denominator: number): number | null {
  return denominator > 0 ? numerator / denominator : null;
}

/** Deterministic PRNG (mulberry32): every mode of a run gets the same publish schedule. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ScheduledPublish {
  seq: number;
  /** Milliseconds after the mode's publishing started. */
  atMs: number;
  /** Index of the recipient client. */
  client: number;
}

/** The publish schedule of one mode: `rate` messages per second for `durationS`, random recipients. */
export function publishSchedule(options: { rate: number; durationS: number; clients: number; seed: number }): ScheduledPublish[] {
  const random = seededRandom(options.seed);
  // The epsilon absorbs binary rounding: 20000 × (3 / 20000) is 2.9999999999999996, not 3.
  const total = Math.floor(options.rate * options.durationS + 1e-6);
  const schedule: ScheduledPublish[] = [];
  for (let seq = 0; seq < total; seq += 1) {
    schedule.push({ seq, atMs: (seq * 1000) / options.rate, client: Math.floor(random() * options.clients) });
  }
  return schedule;
}
