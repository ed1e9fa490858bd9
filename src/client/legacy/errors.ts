/* Failures as plain Error objects carrying the spec's fields (`code`, `retryable`, `status`,
   `retryAfterMs`, `cause`): subclassing Error does not work reliably on ES5 engines. */

import type { FailureSpec } from '../core/failures.js';
import { hasOwn } from '../core/validate.js';
import type { LpError } from './types.js';

export function makeLegacyError(spec: FailureSpec): LpError {
  const error = new Error(spec.message) as LpError & { [field: string]: unknown };
  for (const field in spec) if (hasOwn(spec, field)) error[field] = (spec as unknown as { [field: string]: unknown })[field];
  error.name = 'LongPollError';
  return error;
}
