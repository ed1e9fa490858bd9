import { linkedController } from './abortable.js';
import { networkFailure, timeoutFailure, type HttpAnswer } from './core/failures.js';
import { makeClientError, type ClientError } from './errors.js';
import type { FetchLike } from './types.js';

export interface JsonRequest {
  method: 'GET' | 'POST';
  url: URL;
  token: string;
  /** Serialised as JSON when present. */
  body?: unknown;
  /** Aborting it (the caller stopping) rejects with the signal's reason, untouched. */
  signal?: AbortSignal;
  /** Aborting it abandons this request alone (to send another instead): rejects with its reason, untouched. */
  abandon?: AbortSignal;
  /** Guards against connections that die silently; rejects with a `request_timeout` error. */
  timeoutMs: number;
}

/**
 * Sends one request and returns any HTTP answer (2xx or not) for the shared protocol logic to
 * read. Throws only when there is no answer: a ClientNetworkError, or the caller's abort reason.
 */
export async function sendRequest(fetchImpl: FetchLike, request: JsonRequest): Promise<HttpAnswer> {
  // Built only when it happens: an Error (and its stack) per request is a measurable share of a poll.
  let timeoutError: ClientError | undefined;
  const timedOut = () => (timeoutError ??= makeClientError(timeoutFailure(request.timeoutMs)));
  const link = linkedController([request.signal, request.abandon], { ms: request.timeoutMs, reason: timedOut });
  const headers: Record<string, string> = { Authorization: `Bearer ${request.token}`, Accept: 'application/json' };
  const init: RequestInit = { method: request.method, headers, signal: link.signal, cache: 'no-store' };
  if (request.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(request.body);
  }
  try {
    const response = await fetchImpl(request.url.href, init);
    const text = await response.text();
    return { status: response.status, text, header: (name) => response.headers.get(name) };
  } catch (error) {
    if (request.signal?.aborted) throw request.signal.reason;
    if (request.abandon?.aborted) throw request.abandon.reason;
    if (link.signal.aborted) throw timedOut();
    throw makeClientError(networkFailure(`${request.method} ${request.url.pathname}`, error));
  } finally {
    link.dispose();
  }
}
