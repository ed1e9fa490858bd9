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

/** Deliveries of one second of a mode: how many, and their p50 and p99 (null when there were none). */
export interface LatencyPoint {
  /** Whole seconds since the first publish of the mode, by time of delivery. */
  second: number;
  count: number;
  p50: number | null;
  p99: number | null;
}

/**
 * Latency over time: deliveries bucketed by the second (since `originMs`) in which they arrived,
 * every second from 0 to the last delivery present, empty ones included.
 */
export function latencySeries(deliveredAtMs: readonly number[], latenciesMs: readonly number[], originMs: number): LatencyPoint[] {
  if (deliveredAtMs.length !== latenciesMs.length) throw new RangeError('Expected one delivery time per latency');
  const buckets: number[][] = [];
  deliveredAtMs.forEach((at, index) => {
    const second = Math.max(0, Math.floor((at - originMs) / 1000));
    (buckets[second] ??= []).push(latenciesMs[index]!);
  });
  return Array.from({ length: buckets.length }, (_, second) => {
    const samples = Array.from(Float64Array.from(buckets[second] ?? []).sort());
    return samples.length === 0
      ? { second, count: 0, p50: null, p99: null }
      : { second, count: samples.length, p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
  });
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
