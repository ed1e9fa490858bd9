import pRetry, { AbortError } from 'p-retry';
import { sleep } from './abortable.js';
import { backoffDelays, resolveBackoffOptions, type BackoffOptions } from './backoff.js';
import { ClientError, ClientProtocolError, type ClientHttpError } from './errors.js';
import { endpoint, httpErrorFrom, sendJsonRequest } from './http.js';
import type { FetchLike } from './types.js';
import { parseBaseUrl, requireAbortSignal, requireNonEmptyString, requireNumberInRange } from './validate.js';

/**
 * @example
 * const options: PublishOptions = { url, token, to: 'bob', id: 'note-1', body: { text: 'hi' } };
 */
export interface PublishOptions {
  url: string | URL;
  token: string;
  /** Recipient user id. */
  to: string;
  /**
   * Client message id (at most 128 characters) that makes retries idempotent: the gateway stores a
   * (sender, id) pair once. Generated when omitted; pass your own to stay idempotent across restarts.
   */
  id?: string;
  /** Any JSON value. */
  body: unknown;
  fetch?: FetchLike;
  signal?: AbortSignal;
  /** Retries after transient failures (network, 5xx, 429). Default 4. */
  retries?: number;
  backoff?: BackoffOptions;
  /** Per-attempt timeout. Default 30000. */
  timeoutMs?: number;
}

/**
 * @example
 * const { id, duplicate }: PublishResult = await publish(options);
 */
export interface PublishResult {
  /** Server id of the stored message. */
  id: number;
  /** True when this (sender, id) had already been stored, e.g. by an earlier attempt whose answer got lost. */
  duplicate: boolean;
  /** The client message id that was sent. */
  clientId: string;
}

const USER_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * Sends one message, retrying transient failures with backoff. Rejects with a ClientError
 * (`ClientHttpError` with the server's code for 4xx answers, after the retries for the rest).
 *
 * @example
 * const { id, duplicate } = await publish({
 *   url: 'https://gateway.example.com/',
 *   token: jwt,
 *   to: 'agent-7',
 *   id: `order-42-note-${noteNumber}`,
 *   body: { text: 'Where is my parcel?' },
 * });
 */
export async function publish(options: PublishOptions): Promise<PublishResult> {
  if (typeof options !== 'object' || options === null) throw new TypeError('Expected publish options to be an object');
  const baseUrl = parseBaseUrl('url', options.url);
  const token = requireNonEmptyString('token', options.token);
  const to = requireNonEmptyString('to', options.to);
  if (!USER_ID_PATTERN.test(to)) throw new TypeError(`Expected \`to\` to match ${USER_ID_PATTERN}, got ${JSON.stringify(to)}`);
  const clientId = options.id === undefined ? newClientMessageId() : requireNonEmptyString('id', options.id);
  if (clientId.length > 128) throw new TypeError(`Expected \`id\` to be at most 128 characters, got ${clientId.length}`);
  if (options.body === undefined) throw new TypeError('Expected `body` to be a JSON value, got undefined');
  const retries = requireNumberInRange('retries', options.retries ?? 4, { min: 0, integer: true });
  const timeoutMs = requireNumberInRange('timeoutMs', options.timeoutMs ?? 30_000, { min: 1 });
  const delayFor = backoffDelays(resolveBackoffOptions(options.backoff, 'backoff'));
  const signal = requireAbortSignal('signal', options.signal);
  const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (typeof fetchImpl !== 'function') throw new TypeError('Expected `fetch` to be a function (no global fetch in this environment; pass one in)');
  const payload = { to, id: clientId, body: options.body };

  const attempt = async (): Promise<PublishResult> => {
    let response;
    try {
      response = await sendJsonRequest(fetchImpl, { method: 'POST', url: endpoint(baseUrl, 'v1/messages'), token, body: payload, signal, timeoutMs });
    } catch (error) {
      if (signal?.aborted) throw new AbortError(signal.reason as Error);
      throw error;
    }
    if (response.status < 200 || response.status > 299) {
      const error: ClientHttpError = httpErrorFrom(response);
      throw error.retryable ? error : new AbortError(error);
    }
    const { id, duplicate } = (response.body ?? {}) as { id?: unknown; duplicate?: unknown };
    if (typeof id !== 'number') throw new ClientProtocolError('Expected a numeric `id` in the publish response');
    return { id, duplicate: duplicate === true, clientId };
  };

  return pRetry(attempt, {
    retries,
    minTimeout: 0,
    factor: 1,
    signal,
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft <= 0) return;
      const retryAfterMs = error instanceof ClientError ? ((error as Partial<ClientHttpError>).retryAfterMs ?? 0) : 0;
      await sleep(Math.max(delayFor(attemptNumber), retryAfterMs), signal);
    },
  });
}

/** Random enough to never collide for one sender; works where `crypto.randomUUID` is missing (plain http pages). */
export function newClientMessageId(): string {
  const uuid = (globalThis.crypto as { randomUUID?: () => string } | undefined)?.randomUUID;
  if (typeof uuid === 'function') return uuid.call(globalThis.crypto);
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}
