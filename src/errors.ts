import { ERROR_STATUS, type ErrorCode } from './error-codes.js';

/**
 * Every error the gateway answers with carries a stable `code` (part of the API contract: clients
 * switch on it) and the HTTP `status` that ERROR_STATUS gives that code, so a code can never be
 * answered with two different statuses. The HTTP layer turns them into `{error: {code, message}}`
 * in exactly one place; anything that is not a GatewayError becomes a generic 500 and is logged.
 */
export interface GatewayErrorOptions {
  cause?: unknown;
  /** Seconds, sent as `Retry-After` on 429 / 503. */
  retryAfterSeconds?: number;
}

/**
 * @example
 * throw new GatewayError('forbidden', 'Only the sender of a message may ask about it.'); // a 403
 * if (isGatewayError(error) && error.code === 'store_unavailable') retryLater(error.retryAfterSeconds);
 */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  /** Lets `isGatewayError` work across realms / duplicated module copies. */
  readonly isGatewayError = true;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return typeof value === 'object' && value !== null && (value as { isGatewayError?: unknown }).isGatewayError === true;
}

/** Raised by a store when it cannot be reached: retryable, so 503 + Retry-After. */
export class StoreUnavailableError extends GatewayError {
  constructor(cause: unknown) {
    super('store_unavailable', 'The message store is unavailable; retry later.', { cause, retryAfterSeconds: 2 });
    this.name = 'StoreUnavailableError';
  }
}

/** Same (sender, id) published again with a different recipient or body. */
export class IdempotencyConflictError extends GatewayError {
  constructor(clientMessageId: string) {
    super('idempotency_conflict', `Message id ${JSON.stringify(clientMessageId)} was already used by this sender for a different message.`);
    this.name = 'IdempotencyConflictError';
  }
}
