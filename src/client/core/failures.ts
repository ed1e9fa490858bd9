/**
 * What can go wrong in the client, as data: the protocol logic decides the code, the message and
 * whether the loop retries, once for both builds; each build turns a FailureSpec into its own error
 * object (classes in the modern client, plain Error objects with fields in the legacy one).
 */
import type { ErrorCode } from '../../error-codes.js';
import { describeError, isString, parseJsonLeniently } from './validate.js';

export interface FailureSpec {
  /**
   * Stable, to switch on: for HTTP answers the server's `error.code` (one of the gateway's
   * ErrorCode table, or `http_error` when the body had none), the client's own code otherwise.
   */
  code: ErrorCode | ClientErrorCode | (string & {});
  message: string;
  retryable: boolean;
  /** HTTP status: set exactly when the failure is an HTTP answer. */
  status?: number;
  /** How long the server asked us to wait (`Retry-After`), in milliseconds. */
  retryAfterMs?: number;
  cause?: unknown;
  /** Which application callback threw, for `callback_failed`. */
  callback?: CallbackName;
}

/** Codes the client raises itself, for failures that are not an HTTP answer. */
export type ClientErrorCode =
  | 'http_error'
  | 'network_error'
  | 'request_timeout'
  | 'invalid_response'
  | 'callback_failed'
  | 'cursor_store_failed'
  | 'token_unavailable'
  | 'unexpected_error';

/** The fields of a built error that the protocol logic reads back. */
export interface ClientFailure {
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
}

export type MakeFailure<Failure extends ClientFailure> = (spec: FailureSpec) => Failure;

/** Which callback threw (and, so, which part of a response is delivered again). */
export type CallbackName = 'onMessages' | 'onReceipts' | 'onReset' | 'onPresence';

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

/** `Retry-After` is either delay-seconds or an HTTP date; returns milliseconds from now. */
export function parseRetryAfter(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const trimmed = value.replace(/^\s+|\s+$/g, '');
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(parseFloat(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return date !== date ? undefined : Math.max(0, date - new Date().getTime());
}

/** One HTTP answer, as both transports report it. */
export interface HttpAnswer {
  status: number;
  text: string;
  header(name: string): string | null;
}

export function isSuccess(answer: HttpAnswer): boolean {
  return answer.status >= 200 && answer.status <= 299;
}

/** A non-2xx answer, keeping the server's stable error code and its Retry-After. */
export function httpFailure(answer: HttpAnswer): FailureSpec {
  const parsed = parseJsonLeniently(answer.text) as { error?: { code?: unknown; message?: unknown } } | undefined;
  const details = parsed && typeof parsed === 'object' ? parsed.error : undefined;
  const spec: FailureSpec = {
    // A non-JSON error page (from a proxy, say) still yields an error through its status.
    code: details && isString(details.code) ? details.code : 'http_error',
    message: details && isString(details.message) ? details.message : 'HTTP ' + answer.status,
    retryable: isRetryableStatus(answer.status),
    status: answer.status,
  };
  const retryAfterMs = parseRetryAfter(answer.header('Retry-After'));
  if (retryAfterMs !== undefined) spec.retryAfterMs = retryAfterMs;
  return spec;
}

/**
 * The JSON body of a 2xx answer. Anything else is retried: such answers usually come from
 * infrastructure in between (a proxy's HTML page, a truncated body), not from the gateway.
 * A non-2xx answer is the failure it stands for.
 */
export function successBody(answer: HttpAnswer): { body: unknown } | { failure: FailureSpec } {
  if (!isSuccess(answer)) return { failure: httpFailure(answer) };
  try {
    return { body: JSON.parse(answer.text) };
  } catch (error) {
    return { failure: protocolFailure('Expected a JSON body from ' + answer.status + ' response, got ' + JSON.stringify(answer.text.slice(0, 60)), error) };
  }
}

/** A failure the client raises itself (not an HTTP answer). */
function clientFailure(code: ClientErrorCode, message: string, retryable: boolean, cause: unknown): FailureSpec {
  return { code: code, message: message, retryable: retryable, cause: cause };
}

export function protocolFailure(message: string, cause?: unknown): FailureSpec {
  return clientFailure('invalid_response', message, true, cause);
}

/** A field of a poll answer that is not what the gateway sends (`expected` says what it is). */
export function pollFieldFailure(field: string, expected: string): FailureSpec {
  return protocolFailure('Expected `' + field + '` in the poll response to be ' + expected);
}

/** Connection refused / reset, DNS: always retried. */
export function networkFailure(what: string, cause?: unknown): FailureSpec {
  return clientFailure('network_error', what + ' failed: ' + (cause === undefined ? 'no response' : describeError(cause)), true, cause);
}

/** No answer in time: the connection may have died silently. Retried. */
export function timeoutFailure(timeoutMs: number): FailureSpec {
  return clientFailure('request_timeout', 'No response within ' + timeoutMs + ' ms', true, undefined);
}

/** The application's callback threw; the batch is delivered again after a backoff delay. */
export function callbackFailure(cause: unknown, callback: CallbackName): FailureSpec {
  const spec = clientFailure('callback_failed', callback + ' threw: ' + describeError(cause), true, cause);
  spec.callback = callback;
  return spec;
}

/**
 * The cursor store's `load` failed (fatal: the poller cannot know where to resume) or its `save`
 * did (retried: memory already moved on, and the checkpoint is saved again after the next poll).
 */
export function cursorStoreFailure(operation: 'load' | 'save', cause: unknown): FailureSpec {
  return clientFailure('cursor_store_failed', 'Cursor store ' + operation + '() failed: ' + describeError(cause), operation === 'save', cause);
}

/** The token function threw (typically a refresh that could not reach its auth server): retried. */
export function tokenFailure(cause: unknown): FailureSpec {
  return clientFailure('token_unavailable', 'The token function failed: ' + describeError(cause), true, cause);
}

export function unexpectedFailure(cause: unknown): FailureSpec {
  return clientFailure('unexpected_error', describeError(cause), false, cause);
}
