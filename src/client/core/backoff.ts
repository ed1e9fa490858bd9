import { invalid, isObject, numberOption, requireNumberInRange } from './validate.js';

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

export interface ResolvedBackoffOptions {
  minDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
}

/** Copies and checks backoff options; `path` names the option in error messages (`backoff`). */
export function resolveBackoffOptions(options: BackoffOptions | undefined, path?: string): ResolvedBackoffOptions {
  if (options !== undefined && !isObject(options)) {
    throw invalid(path || 'backoff', 'an object', options);
  }
  const given = options || {};
  const name = (key: string) => (path ? path + '.' + key : key);
  const minDelayMs = numberOption(name('minDelayMs'), given.minDelayMs, 500, { min: 0 });
  const maxDelayMs = numberOption(name('maxDelayMs'), given.maxDelayMs, Math.max(30000, minDelayMs), { min: 0 });
  if (maxDelayMs < minDelayMs) {
    throw new TypeError('Expected `' + name('maxDelayMs') + '` (' + maxDelayMs + ') to be >= `' + name('minDelayMs') + '` (' + minDelayMs + ')');
  }
  return {
    minDelayMs: minDelayMs,
    maxDelayMs: maxDelayMs,
    factor: numberOption(name('factor'), given.factor, 2, { min: 1 }),
    jitter: numberOption(name('jitter'), given.jitter, 0.5, { min: 0, max: 1 }),
  };
}

export function jitteredDelay(options: ResolvedBackoffOptions, attempt: number, random?: () => number): number {
  // The largest delay attempt `attempt` can get: factor^n overflows to Infinity for large n, and
  // Math.min then yields maxDelayMs, which is right (but 0 * Infinity is NaN, hence the first case).
  const ceiling = options.minDelayMs === 0 ? 0 : Math.min(options.maxDelayMs, options.minDelayMs * Math.pow(options.factor, attempt - 1));
  const floor = ceiling * (1 - options.jitter);
  return floor + (random || Math.random)() * (ceiling - floor);
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
export function backoffDelays(options?: BackoffOptions, random?: () => number): (attempt: number) => number {
  const resolved = resolveBackoffOptions(options);
  return function delayFor(attempt: number): number {
    requireNumberInRange('attempt', attempt, { min: 1, integer: true, description: 'an integer >= 1' });
    return jitteredDelay(resolved, attempt, random);
  };
}

/** The wait before retry `attempt` after `failure`: the backoff delay, or the server's Retry-After when longer. */
export function retryDelay(options: ResolvedBackoffOptions, attempt: number, failure: { retryAfterMs?: number }): number {
  return Math.max(jitteredDelay(options, attempt), failure.retryAfterMs || 0);
}
