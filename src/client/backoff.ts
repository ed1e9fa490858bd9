import { requireNumberInRange } from './validate.js';

/**
 * Exponential backoff with proportional jitter.
 *
 * For retry attempt `n` (1 = the first retry) the *ceiling* is
 * `min(maxDelayMs, minDelayMs * factor^(n-1))` and the delay is drawn uniformly from
 * `[ceiling * (1 - jitter), ceiling]`:
 * - `jitter: 1` is "full jitter" (anything from 0 to the ceiling; spreads a crowd best),
 * - `jitter: 0.5` (the default) is "equal jitter" (at least half the ceiling, so a crowd of
 *   clients that lost the server together never comes back instantly, yet still spreads out),
 * - `jitter: 0` is plain exponential backoff.
 *
 * So a delay is never negative, never above `maxDelayMs`, and its mean is `ceiling * (1 - jitter / 2)`.
 * A `Retry-After` from the server replaces the delay when it is longer.
 *
 * @example
 * const backoff: BackoffOptions = { minDelayMs: 250, maxDelayMs: 15_000, factor: 2, jitter: 1 };
 */
export interface BackoffOptions {
  /** Ceiling of the first retry delay. Default 500. */
  minDelayMs?: number;
  /** Upper bound of every delay. Default 30000. */
  maxDelayMs?: number;
  /** Growth of the ceiling per attempt, >= 1. Default 2. */
  factor?: number;
  /** Fraction of the ceiling that is randomised, 0..1. Default 0.5 (equal jitter). */
  jitter?: number;
}

export type ResolvedBackoffOptions = Required<BackoffOptions>;

export const DEFAULT_BACKOFF: ResolvedBackoffOptions = Object.freeze({
  minDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.5,
});

/** Copies and checks backoff options; `prefix` names the option path in error messages. */
export function resolveBackoffOptions(options: BackoffOptions | undefined, prefix = ''): ResolvedBackoffOptions {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new TypeError(`Expected \`${prefix || 'backoff'}\` to be an object`);
  }
  const name = (key: string) => (prefix ? `${prefix}.${key}` : key);
  const minDelayMs = requireNumberInRange(name('minDelayMs'), options?.minDelayMs ?? DEFAULT_BACKOFF.minDelayMs, { min: 0 });
  const maxDelayMs = requireNumberInRange(name('maxDelayMs'), options?.maxDelayMs ?? Math.max(DEFAULT_BACKOFF.maxDelayMs, minDelayMs), {
    min: 0,
  });
  if (maxDelayMs < minDelayMs) {
    throw new TypeError(`Expected \`${name('maxDelayMs')}\` (${maxDelayMs}) to be >= \`${name('minDelayMs')}\` (${minDelayMs})`);
  }
  const factor = requireNumberInRange(name('factor'), options?.factor ?? DEFAULT_BACKOFF.factor, {
    min: 1,
    description: 'a number >= 1',
  });
  const jitter = requireNumberInRange(name('jitter'), options?.jitter ?? DEFAULT_BACKOFF.jitter, { min: 0, max: 1 });
  return { minDelayMs, maxDelayMs, factor, jitter };
}

/** The largest delay attempt `attempt` can get (before jitter is applied). */
export function backoffCeiling(options: ResolvedBackoffOptions, attempt: number): number {
  if (options.minDelayMs === 0) return 0;
  // `factor ** n` overflows to Infinity for large n; Math.min then yields maxDelayMs, which is right.
  return Math.min(options.maxDelayMs, options.minDelayMs * options.factor ** (attempt - 1));
}

/**
 * Returns `delayFor(attempt)`, the jittered delay in milliseconds before retry `attempt` (1-based),
 * for callers writing their own retry loop. `random` must return values in [0, 1) (default Math.random).
 *
 * @example
 * const delayFor = backoffDelays({ minDelayMs: 200, maxDelayMs: 10_000, factor: 2, jitter: 0.5 });
 * for (let attempt = 1; ; attempt++) {
 *   try { return await doWork(); } catch { await sleep(delayFor(attempt)); }
 * }
 */
export function backoffDelays(options: BackoffOptions = {}, random: () => number = Math.random): (attempt: number) => number {
  const resolved = resolveBackoffOptions(options);
  return function delayFor(attempt: number): number {
    requireNumberInRange('attempt', attempt, { min: 1, integer: true, description: 'an integer >= 1' });
    const ceiling = backoffCeiling(resolved, attempt);
    const floor = ceiling * (1 - resolved.jitter);
    return floor + random() * (ceiling - floor);
  };
}
