import { ClientProtocolError } from './errors.js';
import type { PollMessage, PollResponse } from './types.js';

/** Checks the shape of a `GET /v1/poll` body; anything else is a ClientProtocolError. */
export function parsePollResponse(body: unknown): PollResponse {
  if (typeof body !== 'object' || body === null) {
    throw new ClientProtocolError('Expected the poll response to be a JSON object');
  }
  const { messages, cursor, superseded } = body as Record<string, unknown>;
  if (typeof cursor !== 'number' || !Number.isSafeInteger(cursor) || cursor < 0) {
    throw new ClientProtocolError(`Expected \`cursor\` in the poll response to be a non-negative integer, got ${String(cursor)}`);
  }
  if (!Array.isArray(messages)) {
    throw new ClientProtocolError('Expected `messages` in the poll response to be an array');
  }
  messages.forEach(checkMessage);
  return { messages: messages as PollMessage[], cursor, superseded: superseded === true };
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
