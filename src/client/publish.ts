import { batchPlan, newClientMessageId, publishPlan, type BatchItem, type PublishResult } from './core/publish-request.js';
import { resolveTransport, sendWithRetries, type GatewayRequestOptions } from './request-with-retries.js';

export type { BatchItem, PublishResult };

/**
 * @example
 * const options: PublishOptions = { url, token, to: 'bob', id: 'note-1', body: { text: 'hi' } };
 */
export interface PublishOptions extends BatchItem, GatewayRequestOptions {}

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
  const transport = resolveTransport(options, 'publish');
  return sendWithRetries(transport, publishPlan(options, newClientId));
}

/**
 * @example
 * const options: PublishBatchOptions = { url, token, messages: [{ to: 'bob', body: 1 }, { to: 'carol', body: 2 }] };
 */
export interface PublishBatchOptions extends GatewayRequestOptions {
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
  const transport = resolveTransport(options, 'publish');
  return sendWithRetries(transport, batchPlan(options, newClientId));
}

/** A UUID where the platform has one; the shared generator elsewhere (plain http pages). */
export function newClientId(): string {
  const uuid = (globalThis.crypto as { randomUUID?: () => string } | undefined)?.randomUUID;
  return typeof uuid === 'function' ? uuid.call(globalThis.crypto) : newClientMessageId();
}
