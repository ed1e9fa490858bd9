/* Failures as plain Error objects with fields (`code`, `retryable`, `status`, `retryAfterMs`):
   subclassing Error does not work reliably on ES5 engines. */

import type { FailureSpec } from '../core/failures.js';
import type { LpError } from './types.js';

export function makeLegacyError(spec: FailureSpec): LpError {
  const error = new Error(spec.message) as LpError;
  error.name = 'LongPollError';
  error.code = spec.code;
  error.retryable = spec.retryable;
  if (spec.status !== undefined) error.status = spec.status;
  if (spec.retryAfterMs !== undefined) error.retryAfterMs = spec.retryAfterMs;
  if (spec.cause !== undefined) error.cause = spec.cause;
  return error;
}

/** Application code answers synchronously here: run it and report how it ended. */
export function invokeNow(call: () => unknown, done: (failed: boolean, outcome: unknown) => void): void {
  let failed = false;
  let outcome: unknown;
  try {
    outcome = call();
  } catch (error) {
    failed = true;
    outcome = error;
  }
  done(failed, outcome);
}
