import pRetry, { AbortError } from 'p-retry';
import { sleep } from './abortable.js';
import { resolveBackoffOptions, retryDelay, type BackoffOptions } from './core/backoff.js';
import type { HttpAnswer } from './core/failures.js';
import { publishRetryOptions } from './core/publish-request.js';
import type { RequestPlan } from './core/request-plan.js';
import { requireNonEmptyString } from './core/validate.js';
import { ClientError, makeClientError } from './errors.js';
import { sendRequest } from './http.js';
import type { FetchLike } from './types.js';
import { parseBaseUrl, requireAbortSignal, resolveFetch } from './validate.js';

/**
 * Where and how the helpers beside the pollers (publish, publishBatch, presence, topicPresence)
 * send: the gateway, the token, the retries.
 *
 * @example
 * const options: GatewayRequestOptions = { url: 'https://gateway.example.com/', token: jwt, retries: 2, timeoutMs: 10_000 };
 */
export interface GatewayRequestOptions {
  url: string | URL;
  token: string;
  fetch?: FetchLike;
  signal?: AbortSignal;
  /** Retries after transient failures (network, 5xx, 429). Default 4. */
  retries?: number;
  backoff?: BackoffOptions;
  /** Per-attempt timeout. Default 30000. */
  timeoutMs?: number;
}

interface Transport {
  baseUrl: URL;
  token: string;
  retries: number;
  timeoutMs: number;
  backoff: ReturnType<typeof resolveBackoffOptions>;
  signal: AbortSignal | undefined;
  fetch: FetchLike;
}

/** Checks the transport options (after the options object itself: `what` names it in the message). */
export function resolveTransport(options: GatewayRequestOptions, what: string): Transport {
  if (typeof options !== 'object' || options === null) throw new TypeError(`Expected ${what} options to be an object`);
  const { retries, timeoutMs } = publishRetryOptions(options);
  return {
    baseUrl: parseBaseUrl('url', options.url),
    token: requireNonEmptyString('token', options.token),
    retries,
    timeoutMs,
    backoff: resolveBackoffOptions(options.backoff, 'backoff'),
    signal: requireAbortSignal('signal', options.signal),
    fetch: resolveFetch(options.fetch),
  };
}

/**
 * Sends the plan's request (a POST of its payload, or a GET), retrying transient failures; 4xx
 * answers end at once with the server's code.
 */
export async function sendWithRetries<Result>(transport: Transport, plan: RequestPlan<Result>): Promise<Result> {
  const { signal } = transport;
  const method = plan.payload === undefined ? 'GET' : 'POST';
  const attempt = async (): Promise<Result> => {
    let answer: HttpAnswer;
    try {
      answer = await sendRequest(transport.fetch, { method, url: new URL(plan.path, transport.baseUrl), token: transport.token, body: plan.payload, signal, timeoutMs: transport.timeoutMs });
    } catch (error) {
      if (signal?.aborted) throw new AbortError(signal.reason as Error);
      throw error;
    }
    const outcome = plan.read(answer);
    if ('result' in outcome) return outcome.result;
    const error = makeClientError(outcome.failure);
    throw error.retryable ? error : new AbortError(error);
  };

  return pRetry(attempt, {
    retries: transport.retries,
    minTimeout: 0,
    factor: 1,
    signal,
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft <= 0) return;
      await sleep(retryDelay(transport.backoff, attemptNumber, error instanceof ClientError ? (error as { retryAfterMs?: number }) : {}), signal);
    },
  });
}
