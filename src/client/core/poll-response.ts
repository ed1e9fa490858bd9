import { protocolFailure, type FailureSpec } from './failures.js';
import type { DeliveryReceipt, PollMessage, PollResponse } from './types.js';
import { isArray, isFiniteNumber, isWholeNumber, typeName } from './validate.js';

/**
 * Checks the shape of a `GET /v1/poll` body. Returns the response, or the protocol failure that
 * says what is wrong (a proxy's answer, a truncated body): retried like any other failure.
 */
export function parsePollResponse(body: unknown): { response: PollResponse } | { failure: FailureSpec } {
  if (typeof body !== 'object' || body === null) return fail('Expected the poll response to be a JSON object');
  const fields = body as { messages?: unknown; receipts?: unknown; cursor?: unknown; superseded?: unknown };
  const cursor = fields.cursor;
  if (!isWholeNumber(cursor) || cursor < 0) return fail('Expected `cursor` in the poll response to be a non-negative integer, got ' + typeName(cursor));
  const messages = fields.messages;
  if (!isArray(messages)) return fail('Expected `messages` in the poll response to be an array');
  for (let index = 0; index < messages.length; index++) {
    const problem = messageProblem(messages[index]);
    if (problem) return fail('Expected `messages[' + index + ']` to have ' + problem);
  }
  // The gateway leaves the key out when there are none.
  const receipts = fields.receipts === undefined ? [] : fields.receipts;
  if (!isArray(receipts)) return fail('Expected `receipts` in the poll response to be an array when present');
  for (let index = 0; index < receipts.length; index++) {
    if (!isReceipt(receipts[index])) {
      return fail('Expected `receipts[' + index + ']` to have a numeric `id`, string `to` and `at`, and `status` "acked"');
    }
  }
  return {
    response: { messages: messages as PollMessage[], receipts: receipts as DeliveryReceipt[], cursor: cursor, superseded: fields.superseded === true },
  };
}

function fail(message: string): { failure: FailureSpec } {
  return { failure: protocolFailure(message) };
}

function messageProblem(value: unknown): string | undefined {
  const message = (value || {}) as Partial<Record<'id' | 'from' | 'createdAt' | 'expiresAt', unknown>>;
  if (!isFiniteNumber(message.id) || typeof message.from !== 'string' || typeof message.createdAt !== 'string') {
    return 'a numeric `id` and string `from` and `createdAt`';
  }
  if (message.expiresAt !== undefined && typeof message.expiresAt !== 'string') return 'a string `expiresAt` when present';
  return undefined;
}

function isReceipt(value: unknown): boolean {
  const receipt = (value || {}) as Partial<Record<'id' | 'to' | 'status' | 'at', unknown>>;
  return isFiniteNumber(receipt.id) && typeof receipt.to === 'string' && receipt.status === 'acked' && typeof receipt.at === 'string';
}
