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
  /**
   * Ask for a delivery receipt: once the recipient acknowledges the message, a `DeliveryReceipt`
   * with the returned `id` reaches this sender's own poller (`onReceipts`). Default false.
   */
  receipt?: boolean;
  /** Seconds after which the gateway never delivers it (1 … the gateway's MESSAGE_TTL_MAX_S). Default: never, or the gateway's MESSAGE_TTL_DEFAULT_S. */
  ttl?: number;
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
  const transport = resolveTransport(options);
  const item = toWireItem(options, '');
  return sendWithRetries(transport, 'v1/messages', item, (body) => toResult(body, item.id, 'the publish response'));
}

/**
 * One message of a batch: the fields of `publish` that belong to a message.
 *
 * @example
 * const item: BatchItem = { to: 'agent-7', id: 'order-42-note-3', body: { text: 'hi' }, receipt: true };
 */
export type BatchItem = Pick<PublishOptions, 'to' | 'id' | 'body' | 'receipt' | 'ttl'>;

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
  if (!Array.isArray(options.messages) || options.messages.length === 0) throw new TypeError('Expected `messages` to be a non-empty array');
  const items = options.messages.map((item, index) => {
    if (typeof item !== 'object' || item === null) throw new TypeError(`Expected \`messages[${index}]\` to be an object`);
    return toWireItem(item, `messages[${index}].`);
  });
  return sendWithRetries(transport, 'v1/messages/batch', { messages: items }, (body) => {
    const results = (body as { results?: unknown } | undefined)?.results;
    if (!Array.isArray(results) || results.length !== items.length) {
      throw new ClientProtocolError(`Expected \`results\` with ${items.length} entries in the batch publish response`);
    }
    return results.map((result, index) => toResult(result, items[index]!.id, `results[${index}] of the batch publish response`));
  });
}

interface WireItem {
  to: string;
  id: string;
  body: unknown;
  receipt?: true;
  ttl?: number;
}

function toWireItem(item: BatchItem, prefix: string): WireItem {
  const to = requireNonEmptyString(`${prefix}to`, item.to);
  if (!USER_ID_PATTERN.test(to)) throw new TypeError(`Expected \`${prefix}to\` to match ${USER_ID_PATTERN}, got ${JSON.stringify(to)}`);
  const clientId = item.id === undefined ? newClientMessageId() : requireNonEmptyString(`${prefix}id`, item.id);
  if (clientId.length > 128) throw new TypeError(`Expected \`${prefix}id\` to be at most 128 characters, got ${clientId.length}`);
  if (item.body === undefined) throw new TypeError(`Expected \`${prefix}body\` to be a JSON value, got undefined`);
  if (item.receipt !== undefined && typeof item.receipt !== 'boolean') {
    throw new TypeError(`Expected \`${prefix}receipt\` to be a boolean, got ${typeof item.receipt}`);
  }
  if (item.ttl !== undefined && !(Number.isInteger(item.ttl) && item.ttl >= 1)) {
    throw new TypeError(`Expected \`${prefix}ttl\` to be a positive whole number of seconds, got ${String(item.ttl)}`);
  }
  // Sent only when asked for, so gateways that predate receipts and expiry keep accepting plain publishes.
  const wire: WireItem = { to, id: clientId, body: item.body };
  if (item.receipt) wire.receipt = true;
  if (item.ttl !== undefined) wire.ttl = item.ttl;
  return wire;
}

function toResult(body: unknown, clientId: string, what: string): PublishResult {
  const { id, duplicate } = (body ?? {}) as { id?: unknown; duplicate?: unknown };
  if (typeof id !== 'number') throw new ClientProtocolError(`Expected a numeric \`id\` in ${what}`);
  return { id, duplicate: duplicate === true, clientId };
}

interface Transport {
  baseUrl: URL;
  token: string;
  retries: number;
  timeoutMs: number;
  delayFor: (attempt: number) => number;
  signal: AbortSignal | undefined;
  fetch: FetchLike;
}

function resolveTransport(options: Omit<PublishOptions, keyof BatchItem>): Transport {
  const baseUrl = parseBaseUrl('url', options.url);
  const token = requireNonEmptyString('token', options.token);
  const retries = requireNumberInRange('retries', options.retries ?? 4, { min: 0, integer: true });
  const timeoutMs = requireNumberInRange('timeoutMs', options.timeoutMs ?? 30_000, { min: 1 });
  const delayFor = backoffDelays(resolveBackoffOptions(options.backoff, 'backoff'));
  const signal = requireAbortSignal('signal', options.signal);
  const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (typeof fetchImpl !== 'function') throw new TypeError('Expected `fetch` to be a function (no global fetch in this environment; pass one in)');
  return { baseUrl, token, retries, timeoutMs, delayFor, signal, fetch: fetchImpl };
}

/** POSTs `payload`, retrying transient failures; 4xx answers end at once with the server's code. */
async function sendWithRetries<Result>(transport: Transport, path: string, payload: unknown, toResultOf: (body: unknown) => Result): Promise<Result> {
  const { signal } = transport;
  const attempt = async (): Promise<Result> => {
    let response;
    try {
      response = await sendJsonRequest(transport.fetch, {
        method: 'POST',
        url: endpoint(transport.baseUrl, path),
        token: transport.token,
        body: payload,
        signal,
        timeoutMs: transport.timeoutMs,
      });
    } catch (error) {
      if (signal?.aborted) throw new AbortError(signal.reason as Error);
      throw error;
    }
    if (response.status < 200 || response.status > 299) {
      const error: ClientHttpError = httpErrorFrom(response);
      throw error.retryable ? error : new AbortError(error);
    }
    return toResultOf(response.body);
  };

  return pRetry(attempt, {
    retries: transport.retries,
    minTimeout: 0,
    factor: 1,
    signal,
    onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft <= 0) return;
      const retryAfterMs = error instanceof ClientError ? ((error as Partial<ClientHttpError>).retryAfterMs ?? 0) : 0;
      await sleep(Math.max(transport.delayFor(attemptNumber), retryAfterMs), signal);
    },
  });
}

/** Random enough to never collide for one sender; works where `crypto.randomUUID` is missing (plain http pages). */
export function newClientMessageId(): string {
  const uuid = (globalThis.crypto as { randomUUID?: () => string } | undefined)?.randomUUID;
  if (typeof uuid === 'function') return uuid.call(globalThis.crypto);
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}
