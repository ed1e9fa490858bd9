import { linkedController } from './abortable.js';
import { ClientHttpError, ClientNetworkError, ClientProtocolError } from './errors.js';
import type { FetchLike } from './types.js';

export interface JsonRequest {
  method: 'GET' | 'POST';
  url: URL;
  token: string;
  /** Serialised as JSON when present. */
  body?: unknown;
  /** Aborting it (the caller stopping) rejects with the signal's reason, untouched. */
  signal?: AbortSignal;
  /** Guards against connections that die silently; rejects with a `request_timeout` error. */
  timeoutMs: number;
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON body; undefined when the body was empty. */
  body: unknown;
}

/**
 * Sends one request and returns any HTTP answer (2xx or not) with its JSON body parsed. Throws
 * only when there is no usable answer: ClientNetworkError, or ClientProtocolError for a 2xx whose
 * body is not JSON, or the caller's abort reason.
 */
export async function sendJsonRequest(fetchImpl: FetchLike, request: JsonRequest): Promise<JsonResponse> {
  const timeoutError = new ClientNetworkError(`No response within ${request.timeoutMs} ms`, undefined, 'request_timeout');
  const link = linkedController([request.signal], { ms: request.timeoutMs, reason: () => timeoutError });
  const headers: Record<string, string> = { Authorization: `Bearer ${request.token}`, Accept: 'application/json' };
  const init: RequestInit = { method: request.method, headers, signal: link.signal, cache: 'no-store' };
  if (request.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(request.body);
  }
  try {
    let response: Response;
    let text: string;
    try {
      response = await fetchImpl(request.url.href, init);
      text = await response.text();
    } catch (error) {
      if (request.signal?.aborted) throw request.signal.reason;
      if (link.signal.aborted) throw timeoutError;
      throw new ClientNetworkError(`${request.method} ${request.url.pathname} failed: ${error instanceof Error ? error.message : String(error)}`, error);
    }
    return { status: response.status, headers: response.headers, body: parseBody(response, text) };
  } finally {
    link.dispose();
  }
}

function parseBody(response: Response, text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    if (response.ok) {
      throw new ClientProtocolError(`Expected a JSON body from ${response.status} response, got ${JSON.stringify(text.slice(0, 60))}`, error);
    }
    // A non-JSON error page (from a proxy, say) still yields a ClientHttpError via its status.
    return undefined;
  }
}

/** Builds the typed error for a non-2xx answer, keeping the server's stable error code. */
export function httpErrorFrom(response: JsonResponse): ClientHttpError {
  const error = (response.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : 'http_error';
  const message = typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`;
  return new ClientHttpError(response.status, code, message, parseRetryAfter(response.headers.get('Retry-After')));
}

/** `Retry-After` is either delay-seconds or an HTTP date; returns milliseconds from now. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function endpoint(baseUrl: URL, path: string, query: Record<string, string | number> = {}): URL {
  const url = new URL(path, baseUrl);
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, String(value));
  return url;
}
