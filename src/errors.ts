/**
 * Every error the gateway answers with carries a stable `code` (part of the API contract: clients
 * switch on it) and an HTTP `status`. The HTTP layer turns them into `{error: {code, message}}` in
 * exactly one place; anything that is not a GatewayError becomes a generic 500 and is logged.
 */
export interface GatewayErrorOptions {
  status?: number;
  cause?: unknown;
  /** Seconds, sent as `Retry-After` on 429 / 503. */
  retryAfterSeconds?: number;
}

export class GatewayError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryAfterSeconds: number | undefined;
  /** Lets `isGatewayError` work across realms / duplicated module copies. */
  readonly isGatewayError = true;

  constructor(code: string, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = options.status ?? 500;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return typeof value === 'object' && value !== null && (value as { isGatewayError?: unknown }).isGatewayError === true;
}

/** Raised by a store when it cannot be reached: retryable, so 503 + Retry-After. */
export class StoreUnavailableError extends GatewayError {
  constructor(cause: unknown) {
    super('store_unavailable', 'The message store is unavailable; retry later.', { status: 503, cause, retryAfterSeconds: 2 });
    this.name = 'StoreUnavailableError';
  }
}

/** Same (sender, id) published again with a different recipient or body. */
export class IdempotencyConflictError extends GatewayError {
  constructor(clientMessageId: string) {
    super(
      'idempotency_conflict',
      `Message id ${JSON.stringify(clientMessageId)} was already used by this sender for a different message.`,
      { status: 409 },
    );
    this.name = 'IdempotencyConflictError';
  }
}
