import { ClientProtocolError } from './errors.js';
import type { DeliveryReceipt, PollMessage, PollResponse } from './types.js';

/** Checks the shape of a `GET /v1/poll` body; anything else is a ClientProtocolError. */
export function parsePollResponse(body: unknown): PollResponse {
  if (typeof body !== 'object' || body === null) {
    throw new ClientProtocolError('Expected the poll response to be a JSON object');
  }
  const { messages, receipts = [], cursor, superseded } = body as Record<string, unknown>;
  if (typeof cursor !== 'number' || !Number.isSafeInteger(cursor) || cursor < 0) {
    throw new ClientProtocolError(`Expected \`cursor\` in the poll response to be a non-negative integer, got ${String(cursor)}`);
  }
  if (!Array.isArray(messages)) {
    throw new ClientProtocolError('Expected `messages` in the poll response to be an array');
  }
  messages.forEach(checkMessage);
  // The gateway leaves the key out when there are none.
  if (!Array.isArray(receipts)) {
    throw new ClientProtocolError('Expected `receipts` in the poll response to be an array when present');
  }
  receipts.forEach(checkReceipt);
  return { messages: messages as PollMessage[], receipts: receipts as DeliveryReceipt[], cursor, superseded: superseded === true };
}

function checkReceipt(receipt: unknown, index: number): void {
  const { id, to, status, at } = (receipt ?? {}) as Record<string, unknown>;
  if (typeof id !== 'number' || !Number.isFinite(id) || typeof to !== 'string' || status !== 'acked' || typeof at !== 'string') {
    throw new ClientProtocolError(`Expected \`receipts[${index}]\` to have a numeric \`id\`, string \`to\` and \`at\`, and \`status\` "acked"`);
  }
}

function checkMessage(message: unknown, index: number): void {
  const { id, from, createdAt, expiresAt } = (message ?? {}) as Record<string, unknown>;
  if (typeof id !== 'number' || !Number.isFinite(id) || typeof from !== 'string' || typeof createdAt !== 'string') {
    throw new ClientProtocolError(`Expected \`messages[${index}]\` to have a numeric \`id\` and string \`from\` and \`createdAt\``);
  }
  if (expiresAt !== undefined && typeof expiresAt !== 'string') {
    throw new ClientProtocolError(`Expected \`messages[${index}].expiresAt\` to be a string when present`);
  }
}
