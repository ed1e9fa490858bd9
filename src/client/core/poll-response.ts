import { pollFieldFailure, protocolFailure, type FailureSpec } from './failures.js';
import { isPosition } from './topics.js';
import type { DeliveryReceipt, PollMessage, PollResponse, TopicReset } from './types.js';
import { isArray, isFiniteNumber, isObject, typeName } from './validate.js';

/**
 * Checks the shape of a poll's answer (`GET` or `POST /v1/poll`). Returns the response, or the
 * protocol failure that says what is wrong (a proxy's answer, a truncated body): retried like any
 * other failure.
 */
export function parsePollResponse(body: unknown): { response: PollResponse } | { failure: FailureSpec } {
  if (!isObject(body)) return { failure: protocolFailure('Expected the poll response to be a JSON object') };
  const fields = body as { messages?: unknown; receipts?: unknown; cursor?: unknown; positions?: unknown; resets?: unknown; superseded?: unknown };
  const cursor = fields.cursor;
  if (!isPosition(cursor)) return { failure: pollFieldFailure('cursor', 'a non-negative integer, got ' + typeName(cursor)) };
  const messages = fields.messages;
  if (!isArray(messages)) return { failure: pollFieldFailure('messages', 'an array') };
  for (let index = 0; index < messages.length; index++) {
    const problem = messageProblem(messages[index]);
    if (problem) return itemFailure('messages', index, problem);
  }
  // The gateway leaves the key out when there are none.
  const receipts = fields.receipts === undefined ? [] : fields.receipts;
  if (!isArray(receipts)) return { failure: pollFieldFailure('receipts', 'an array when present') };
  for (let index = 0; index < receipts.length; index++) {
    if (!isReceipt(receipts[index])) {
      return itemFailure('receipts', index, 'a numeric `id`, string `to` and `at`, and `status` "acked"');
    }
  }
  // Present when the poll read topics. Whether they give the position of each topic it read, the
  // poll session checks (it knows which it asked for); anything else there cannot be a position.
  const positions = fields.positions || {};
  const resets = fields.resets === undefined ? [] : fields.resets;
  let valid = isArray(resets);
  for (let index = 0; valid && index < (resets as unknown[]).length; index++) {
    const reset = ((resets as unknown[])[index] || {}) as Partial<TopicReset>;
    valid = typeof reset.topic === 'string' && isPosition(reset.earliest);
  }
  if (!valid) return { failure: pollFieldFailure('resets', 'an array of {topic, earliest}') };
  return {
    response: {
      messages: messages as PollMessage[],
      receipts: receipts as DeliveryReceipt[],
      cursor: cursor,
      positions: positions as PollResponse['positions'],
      resets: resets as TopicReset[],
      superseded: fields.superseded === true,
    },
  };
}

function itemFailure(field: string, index: number, expected: string): { failure: FailureSpec } {
  return { failure: protocolFailure('Expected `' + field + '[' + index + ']` to have ' + expected) };
}

function messageProblem(value: unknown): string | undefined {
  const message = (value || {}) as Partial<Record<'id' | 'from' | 'createdAt' | 'expiresAt' | 'topic' | 'seq', unknown>>;
  if (!isFiniteNumber(message.id) || typeof message.from !== 'string' || typeof message.createdAt !== 'string') {
    return 'a numeric `id` and string `from` and `createdAt`';
  }
  if (message.expiresAt !== undefined && typeof message.expiresAt !== 'string') return 'a string `expiresAt` when present';
  if (message.topic !== undefined && (typeof message.topic !== 'string' || !isPosition(message.seq))) return 'a numeric `seq` with its string `topic`';
  return undefined;
}

function isReceipt(value: unknown): boolean {
  const receipt = (value || {}) as Partial<Record<'id' | 'to' | 'status' | 'at', unknown>>;
  return isFiniteNumber(receipt.id) && typeof receipt.to === 'string' && receipt.status === 'acked' && typeof receipt.at === 'string';
}
