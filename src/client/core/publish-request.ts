/**
 * What a publish sends and what its answer means, for both builds: the message checks (done
 * before anything is sent), the wire shape and the reading of the gateway's answer. Retrying is
 * the shells' part (p-retry, or timers).
 */
import { randomId } from './random-id.js';
import { readJson, type RequestPlan } from './request-plan.js';
import { USER_ID_PATTERN } from '../../user-id.js';
import { requireTopicName } from './topics.js';
import { invalid, isArray, isFiniteNumber, isObject, isWholeNumber, numberOption, requireMatch, requireNonEmptyString } from './validate.js';

/**
 * One message to publish: to one user (`to`) or to a topic (`topic`), exactly one of the two.
 *
 * @example
 * const item: BatchItem = { to: 'agent-7', id: 'order-42-note-3', body: { text: 'hi' }, receipt: true };
 * const news: BatchItem = { topic: 'room:42', body: { text: 'hello, room' } };
 */
export interface BatchItem {
  /** Recipient user id. */
  to?: string;
  /** Topic name (`^[A-Za-z0-9._:-]{1,128}$`): every reader of the topic gets the message. */
  topic?: string;
  /**
   * Client message id (at most 128 characters) that makes retries idempotent: the gateway stores a
   * (sender, id) pair once. Generated when omitted; pass your own to stay idempotent across restarts.
   */
  id?: string;
  /** Any JSON value. */
  body: unknown;
  /**
   * Ask for a delivery receipt: once the recipient acknowledges the message, a `DeliveryReceipt`
   * with the returned `id` reaches this sender's own poller (`onReceipts`). Default false. Not for
   * topics: nobody acknowledges a topic message, and the gateway refuses it (400 `invalid_request`).
   */
  receipt?: boolean;
  /** Seconds after which the gateway never delivers it (1 … the gateway's MESSAGE_TTL_MAX_S). Default: never, or the gateway's MESSAGE_TTL_DEFAULT_S. */
  ttl?: number;
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
  /** For a topic message: its position in the topic (what readers' positions count). */
  seq?: number;
}

interface WireItem {
  to?: string;
  topic?: string;
  id: string;
  body: unknown;
  receipt?: true;
  ttl?: number;
}

/** Checks one message (`prefix` names it inside a batch) and gives it its client id. */
function toWireItem(item: BatchItem, prefix: string, newClientId: () => string): WireItem {
  if (!isObject(item)) throw invalid(prefix ? prefix.slice(0, -1) : 'options', 'an object', item);
  if ((item.to === undefined) === (item.topic === undefined)) {
    throw new TypeError('Expected exactly one of `' + prefix + 'to` and `' + prefix + 'topic`');
  }
  if (item.topic !== undefined) requireTopicName(prefix + 'topic', item.topic);
  else requireUserId(prefix + 'to', item.to);
  const clientId = item.id === undefined ? newClientId() : requireNonEmptyString(prefix + 'id', item.id);
  if (clientId.length > 128) throw invalid(prefix + 'id', 'at most 128 characters', clientId.length);
  if (item.body === undefined) throw invalid(prefix + 'body', 'a JSON value', item.body);
  if (item.receipt !== undefined && typeof item.receipt !== 'boolean') {
    throw invalid(prefix + 'receipt', 'a boolean', item.receipt);
  }
  if (item.ttl !== undefined && !(isWholeNumber(item.ttl) && item.ttl >= 1)) {
    throw invalid(prefix + 'ttl', 'a positive whole number of seconds', item.ttl);
  }
  const wire: WireItem = { id: clientId, body: item.body };
  if (item.topic !== undefined) wire.topic = item.topic;
  else wire.to = item.to;
  // Sent only when asked for, so gateways that predate receipts and expiry keep accepting plain publishes.
  if (item.receipt) wire.receipt = true;
  if (item.ttl !== undefined) wire.ttl = item.ttl;
  return wire;
}

/** A user id, for a message's `to` and the users presence asks about. */
export function requireUserId(name: string, value: unknown): string {
  return requireMatch(name, value, USER_ID_PATTERN, 'a user id');
}

/** Checks a batch and gives each item its client id. */
function toWireBatch(messages: unknown, newClientId: () => string): WireItem[] {
  if (!isArray(messages) || messages.length === 0) {
    throw invalid('messages', 'a non-empty array', messages);
  }
  const items: WireItem[] = [];
  for (let index = 0; index < (messages as BatchItem[]).length; index++) {
    items.push(toWireItem((messages as BatchItem[])[index] as BatchItem, 'messages[' + index + '].', newClientId));
  }
  return items;
}

/** Retries and per-attempt timeout of a publish, checked. */
export function publishRetryOptions(options: { retries?: number; timeoutMs?: number }): { retries: number; timeoutMs: number } {
  return {
    retries: numberOption('retries', options.retries, 4, { min: 0, integer: true }),
    timeoutMs: numberOption('timeoutMs', options.timeoutMs, 30000, { min: 1 }),
  };
}

/**
 * `POST v1/messages` for one message, checked before anything is sent. `newClientId` makes up the
 * client message id when the item has none (default: newClientMessageId).
 */
export function publishPlan(options: BatchItem, newClientId?: () => string): RequestPlan<PublishResult> {
  const item = toWireItem(options, '', newClientId || newClientMessageId);
  return {
    path: 'v1/messages',
    payload: item,
    read: readJson(function (body) {
      return toResult(body, item.id);
    }, 'a numeric `id` in the publish response'),
  };
}

/** `POST v1/messages/batch`: one result per item, in order; every item checked before anything is sent. */
export function batchPlan(options: { messages: unknown }, newClientId?: () => string): RequestPlan<PublishResult[]> {
  const items = toWireBatch(options.messages, newClientId || newClientMessageId);
  return {
    path: 'v1/messages/batch',
    payload: { messages: items },
    read: readJson(function (body) {
      const results = body.results;
      if (!isArray(results) || results.length !== items.length) return undefined;
      const read: PublishResult[] = [];
      for (let index = 0; index < items.length; index++) {
        const result = toResult(results[index], (items[index] as WireItem).id);
        if (!result) return undefined;
        read.push(result);
      }
      return read;
    }, '`results` of ' + items.length + ', each with a numeric `id`, in the batch publish response'),
  };
}

/** One message's result, or undefined when the answer has no numeric `id` for it. */
function toResult(body: unknown, clientId: string): PublishResult | undefined {
  const fields = (body || {}) as { id?: unknown; duplicate?: unknown; seq?: unknown };
  if (!isFiniteNumber(fields.id)) return undefined;
  const result: PublishResult = { id: fields.id, duplicate: fields.duplicate === true, clientId: clientId };
  if (isFiniteNumber(fields.seq)) result.seq = fields.seq;
  return result;
}

/**
 * A client message id where `crypto.randomUUID` is missing (old browsers, plain http pages): 22
 * random characters, which do not collide for one sender. Not a poller's id (its `clientId`).
 */
export function newClientMessageId(): string {
  return randomId(22);
}
