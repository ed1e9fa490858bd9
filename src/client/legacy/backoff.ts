/* Same jitter model as the modern client (src/client/backoff.ts): the ceiling for retry n is
   min(maxDelayMs, minDelayMs * factor^(n-1)); the delay is uniform in [ceiling * (1 - jitter), ceiling].
   jitter 1 = full jitter, 0.5 (default) = equal jitter, 0 = none. */

import type { LpBackoffOptions, LpResolvedBackoff } from './types.js';
import { lpNumberOption } from './util.js';

export function lpResolveBackoff(options: LpBackoffOptions | undefined, prefix: string): LpResolvedBackoff {
  var given = options || {};
  var minDelayMs = lpNumberOption(prefix + 'minDelayMs', given.minDelayMs, 500, 0);
  var maxDelayMs = lpNumberOption(prefix + 'maxDelayMs', given.maxDelayMs, Math.max(30000, minDelayMs), 0);
  if (maxDelayMs < minDelayMs) {
    throw new TypeError('Expected `' + prefix + 'maxDelayMs` (' + maxDelayMs + ') to be >= `' + prefix + 'minDelayMs` (' + minDelayMs + ')');
  }
  return {
    minDelayMs: minDelayMs,
    maxDelayMs: maxDelayMs,
    factor: lpNumberOption(prefix + 'factor', given.factor, 2, 1),
    jitter: lpNumberOption(prefix + 'jitter', given.jitter, 0.5, 0, 1),
  };
}

export function lpBackoffDelay(backoff: LpResolvedBackoff, attempt: number, random?: () => number): number {
  var ceiling = backoff.minDelayMs === 0 ? 0 : Math.min(backoff.maxDelayMs, backoff.minDelayMs * Math.pow(backoff.factor, attempt - 1));
  var floor = ceiling * (1 - backoff.jitter);
  return floor + (random || Math.random)() * (ceiling - floor);
}

/** Public: `LongPoll.backoffDelays(options, random)` returns `delayFor(attempt)`. */
export function lpBackoffDelays(options?: LpBackoffOptions, random?: () => number): (attempt: number) => number {
  var backoff = lpResolveBackoff(options, '');
  return function (attempt: number): number {
    lpNumberOption('attempt', attempt, 1, 1, undefined, true);
    return lpBackoffDelay(backoff, attempt, random);
  };
}
