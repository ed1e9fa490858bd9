import type { ErrorCode } from '../error-codes.js';
import {
  callbackFailure,
  cursorStoreFailure,
  isRetryableStatus,
  unexpectedFailure,
  type CallbackName,
  type ClientErrorCode,
  type FailureSpec,
} from './core/failures.js';

export { isRetryableStatus };

/**
 * Errors raised by the client. Each has a stable `code` to switch on and says whether the poll loop
 * retries it (`retryable`), so applications and the loop classify failures the same way.
 *
 * @example
 * poller.start().then(({ error }) => {
 *   if (error instanceof ClientError && !error.retryable) console.error(error.code, error.message);
 * });
 */
export class ClientError extends Error {
  /** One of the gateway's error codes (ErrorCode) for HTTP answers, otherwise a ClientErrorCode. */
  readonly code: ErrorCode | ClientErrorCode | (string & {});
  readonly retryable: boolean;

  constructor(code: ClientError['code'], message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClientError';
    this.code = code;
    this.retryable = options.retryable;
  }
}

/**
 * The gateway answered with a non-2xx status. `code` is the server's `error.code` when it sent one
 * (`token_expired`, `forbidden`, `invalid_cursor`, ...), otherwise `http_error`.
 *
 * @example
 * onStatus: (status) => {
 *   if (status.type === 'stopped' && status.error instanceof ClientHttpError && status.error.status === 401) renewLogin();
 * }
 */
export class ClientHttpError extends ClientError {
  readonly status: number;
  /** How long the server asked us to wait (`Retry-After`), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, code: ClientError['code'], message: string, retryAfterMs: number | undefined) {
    super(code, message, { retryable: isRetryableStatus(status) });
    this.name = 'ClientHttpError';
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * The request never produced a response: connection refused / reset, DNS (`network_error`), or no
 * answer in time (`request_timeout`). Always retried by the pollers.
 *
 * @example
 * if (status.type === 'retrying' && status.error instanceof ClientNetworkError) showOfflineBanner();
 */
export class ClientNetworkError extends ClientError {
  constructor(message: string, cause?: unknown, code: 'network_error' | 'request_timeout' = 'network_error') {
    super(code, message, { retryable: true, cause });
    this.name = 'ClientNetworkError';
  }
}

/**
 * A 2xx response whose body is not what the API promises (a proxy's HTML page, truncated JSON).
 * Retried: such answers usually come from infrastructure in between, not from the gateway.
 *
 * @example
 * if (status.type === 'retrying' && status.error instanceof ClientProtocolError) reportMisconfiguredProxy();
 */
export class ClientProtocolError extends ClientError {
  constructor(message: string, cause?: unknown) {
    super('invalid_response', message, { retryable: true, cause });
    this.name = 'ClientProtocolError';
  }
}

/**
 * The application's `onMessages` (or `onReceipts`) threw; the batch is redelivered after a backoff
 * delay. The original exception is `cause`.
 *
 * @example
 * if (status.type === 'retrying' && status.error instanceof ClientCallbackError) log(status.error.cause);
 */
export class ClientCallbackError extends ClientError {
  constructor(cause: unknown, callback: CallbackName = 'onMessages') {
    const spec = callbackFailure(cause, callback);
    super(spec.code, spec.message, spec);
    this.name = 'ClientCallbackError';
  }
}

/**
 * The cursor store's `load` (fatal: the poller cannot know where to resume) or `save` (retried;
 * the checkpoint is saved again after the next poll) failed.
 *
 * @example
 * if (result.error instanceof ClientCursorStoreError) clearCorruptedStorage();
 */
export class ClientCursorStoreError extends ClientError {
  constructor(operation: 'load' | 'save', cause: unknown) {
    const spec = cursorStoreFailure(operation, cause);
    super(spec.code, spec.message, spec);
    this.name = 'ClientCursorStoreError';
  }
}

/**
 * True for any error raised by this client (across duplicated copies of the module too, as long as
 * they share the class).
 *
 * @example
 * try { await publish(options); } catch (error) { if (isClientError(error)) console.warn(error.code); }
 */
export function isClientError(value: unknown): value is ClientError {
  return value instanceof ClientError;
}

/**
 * Builds the error a FailureSpec describes, as the class that matches its code (the poll session
 * and publish logic describe failures; this build decides what they look like).
 */
export function makeClientError(spec: FailureSpec): ClientError {
  if (spec.status !== undefined) return new ClientHttpError(spec.status, spec.code, spec.message, spec.retryAfterMs);
  switch (spec.code) {
    case 'network_error':
    case 'request_timeout':
      return new ClientNetworkError(spec.message, spec.cause, spec.code as 'network_error' | 'request_timeout');
    case 'invalid_response':
      return new ClientProtocolError(spec.message, spec.cause);
    case 'callback_failed':
      return new ClientCallbackError(spec.cause, spec.callback);
    case 'cursor_store_failed':
      return new ClientCursorStoreError(spec.retryable ? 'save' : 'load', spec.cause);
    default:
      return new ClientError(spec.code, spec.message, spec);
  }
}

/** Any thrown value as a ClientError (non-retryable unless it already was one). */
export function toClientError(error: unknown): ClientError {
  return error instanceof ClientError ? error : makeClientError(unexpectedFailure(error));
}
