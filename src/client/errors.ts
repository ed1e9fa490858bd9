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
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable: boolean; cause?: unknown }) {
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

  constructor(status: number, code: string, message: string, retryAfterMs: number | undefined) {
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
  constructor(cause: unknown, callback: 'onMessages' | 'onReceipts' = 'onMessages') {
    super('callback_failed', `${callback} threw: ${describe(cause)}`, { retryable: true, cause });
    this.name = 'ClientCallbackError';
  }
}

/**
 * The cursor store's `load` (fatal: the poller cannot know where to resume) or `save` (retried)
 * failed.
 *
 * @example
 * if (result.error instanceof ClientCursorStoreError) clearCorruptedStorage();
 */
export class ClientCursorStoreError extends ClientError {
  constructor(operation: 'load' | 'save', cause: unknown, retryable: boolean) {
    super('cursor_store_failed', `Cursor store ${operation}() failed: ${describe(cause)}`, { retryable, cause });
    this.name = 'ClientCursorStoreError';
  }
}

/**
 * 408, 429 and 5xx are transient by definition; every other 4xx means the request itself is wrong
 * (bad token, forbidden, invalid parameter), so repeating it would fail forever.
 *
 * @example
 * isRetryableStatus(503); // true
 * isRetryableStatus(401); // false
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
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

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
