import pRetry, { AbortError } from 'p-retry';
import { sleep } from './abortable.js';
import { resolveBackoffOptions, retryDelay, type BackoffOptions } from './core/backoff.js';
import { batchPlan, newClientMessageId, publishPlan, publishRetryOptions, type BatchItem, type PublishPlan, type PublishResult } from './core/publish-request.js';
import type { HttpAnswer } from './core/failures.js';
import { ClientError, makeClientError } from './errors.js';
import { sendRequest } from './http.js';
import type { FetchLike } from './types.js';
import { parseBaseUrl, requireAbortSignal, resolveFetch } from './validate.js';
import { requireNonEmptyString } from './core/validate.js';

export type { BatchItem, PublishResult };

/**
 * @example
 * const options: PublishOptions = { url, token, to: 'bob', id: 'note-1', body: { text: 'hi' } };
 */
export interface PublishOptions extends BatchItem {
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

/**
 * Sends one message, to a user (`to`) or to a topic (`topic`, resolving with its `seq` there),
 * retrying transient failures with backoff. Rejects with a ClientError (`ClientHttpError` with the
 * server's code for 4xx answers, after the retries for the rest).
 *
 * @example
 * const { id, duplicate } = await publish({
 *   url: 'https://gateway.example.com/',
 *   token: jwt,
 *   to: 'agent-7',
 *   id: `order-42-note-${noteNumber}`,
 *   body: { text: 'Where is my parcel?' },
 * });
 * const { seq } = await publish({ url: 'https://gateway.example.com/', token: jwt, topic: 'room:42', body: { text: 'hello, room' } });
 */
export async function publish(options: PublishOptions): Promise<PublishResult> {
  if (typeof options !== 'object' || options === null) throw new TypeError('Expected publish options to be an object');
  const transport = resolveTransport(options);
  return sendWithRetries(transport, publishPlan(options, newClientId));
}

/**
 * @example
 * const options: PublishBatchOptions = { url, token, messages: [{ to: 'bob', body: 1 }, { to: 'carol', body: 2 }] };
 */
export interface PublishBatchOptions extends Omit<PublishOptions, keyof BatchItem> {
  /** At most the gateway's `MAX_BATCH_MESSAGES` (default 100); stored all or nothing. */
  messages: BatchItem[];
}

/**
 * Sends several messages in one `POST /v1/messages/batch`, stored in one transaction, with the
 * same retries as `publish` (every item keeps its client id, so a retried batch is stored once).
 * Resolves with one result per item, in order.
 *
 * @example
 * const results = await publishBatch({
 *   url: 'https://gateway.example.com/',
 *   token: jwt,
 *   messages: recipients.map((to) => ({ to, id: `notice-9-${to}`, body: notice, receipt: true })),
 * });
 */
export async function publishBatch(options: PublishBatchOptions): Promise<PublishResult[]> {
  if (typeof options !== 'object' || options === null) throw new TypeError('Expected publish options to be an object');
  const transport = resolveTransport(options);
  return sendWithRetries(transport, batchPlan(options.messages, newClientId));
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

function resolveTransport(options: Omit<PublishOptions, keyof BatchItem>): Transport {
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

/** POSTs `payload`, retrying transient failures; 4xx answers end at once with the server's code. */
async function sendWithRetries<Result>(transport: Transport, plan: PublishPlan<Result>): Promise<Result> {
  const { signal } = transport;
  const attempt = async (): Promise<Result> => {
    let answer: HttpAnswer;
    try {
      answer = await sendRequest(transport.fetch, { method: 'POST', url: new URL(plan.path, transport.baseUrl), token: transport.token, body: plan.payload, signal, timeoutMs: transport.timeoutMs });
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

/** A UUID where the platform has one; the shared generator elsewhere (plain http pages). */
export function newClientId(): string {
  const uuid = (globalThis.crypto as { randomUUID?: () => string } | undefined)?.randomUUID;
  return typeof uuid === 'function' ? uuid.call(globalThis.crypto) : newClientMessageId();
}
