import { pollFieldFailure, protocolFailure, type FailureSpec } from './failures.js';
import { isPosition } from './topics.js';
import type { DeliveryReceipt, PollMessage, PollResponse, PresenceEvent, TopicReset } from './types.js';
import { isArray, isArrayOf, isFiniteNumber, isObject, isString, typeName } from './validate.js';

/**
 * Checks the shape of a poll's answer (`GET` or `POST /v1/poll`). Returns the response, or the
 * protocol failure that says what is wrong (a proxy's answer, a truncated body): retried like any
 * other failure.
 */
export function parsePollResponse(body: unknown): { response: PollResponse } | { failure: FailureSpec } {
  if (!isObject(body)) return { failure: protocolFailure('Expected the poll response to be a JSON object') };
  const fields = body as { messages?: unknown; receipts?: unknown; cursor?: unknown; positions?: unknown; resets?: unknown; presence?: unknown; superseded?: unknown };
  const cursor = fields.cursor;
  if (!isPosition(cursor)) return fieldFailure('cursor', 'a non-negative integer, got ' + typeName(cursor));
  const messages = fields.messages;
  if (!isArray(messages)) return fieldFailure('messages', 'an array');
  for (let index = 0; index < messages.length; index++) {
    const problem = messageProblem(messages[index]);
    if (problem) return { failure: protocolFailure('Expected `messages[' + index + ']` to have ' + problem) };
  }
  // The gateway leaves these out when there are none (presence: also when the poll did not ask).
  const receipts = fields.receipts || [];
  const resets = fields.resets || [];
  const presence = fields.presence || [];
  if (!isArrayOf(receipts, isReceipt)) return fieldFailure('receipts', 'an array of {id, to, status: "acked", at}');
  if (!isArrayOf(resets, isReset)) return fieldFailure('resets', 'an array of {topic, earliest}');
  if (!isArrayOf(presence, isPresenceEvent)) return fieldFailure('presence', 'an array of {topic, user, event, at}');
  return {
    response: {
      messages: messages as PollMessage[],
      receipts: receipts as DeliveryReceipt[],
      cursor: cursor,
      // Present when the poll read topics. Whether they give the position of each topic it read, the
      // poll session checks (it knows which it asked for); anything else there cannot be a position.
      positions: (fields.positions || {}) as PollResponse['positions'],
      resets: resets as TopicReset[],
      presence: presence as PresenceEvent[],
      superseded: fields.superseded === true,
    },
  };
}

function fieldFailure(field: string, expected: string): { failure: FailureSpec } {
  return { failure: pollFieldFailure(field, expected) };
}

function messageProblem(value: unknown): string | undefined {
  const message = (value || {}) as Partial<Record<'id' | 'from' | 'createdAt' | 'expiresAt' | 'topic' | 'seq', unknown>>;
  if (!isFiniteNumber(message.id) || !isString(message.from) || !isString(message.createdAt)) {
    return 'a numeric `id` and string `from` and `createdAt`';
  }
  if (message.expiresAt !== undefined && !isString(message.expiresAt)) return 'a string `expiresAt` when present';
  if (message.topic !== undefined && (!isString(message.topic) || !isPosition(message.seq))) return 'a numeric `seq` with its string `topic`';
  return undefined;
}

function isReceipt(value: unknown): boolean {
  const receipt = (value || {}) as Partial<Record<'id' | 'to' | 'status' | 'at', unknown>>;
  return isFiniteNumber(receipt.id) && isString(receipt.to) && receipt.status === 'acked' && isString(receipt.at);
}

function isReset(value: unknown): boolean {
  const reset = (value || {}) as Partial<Record<keyof TopicReset, unknown>>;
  return isString(reset.topic) && isPosition(reset.earliest);
}

function isPresenceEvent(value: unknown): boolean {
  const event = (value || {}) as Partial<Record<keyof PresenceEvent, unknown>>;
  return isString(event.topic) && isString(event.user) && (event.event === 'join' || event.event === 'leave') && isString(event.at);
}
