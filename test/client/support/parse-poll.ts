import { parsePollResponse as checkPollResponse } from '../../../src/client/core/poll-response.js';
import { makeClientError } from '../../../src/client/errors.js';
import type { PollResponse } from '../../../src/client/index.js';

/** The shared parser, with its failure thrown as the modern client's error (what the poll loop does). */
export function parsePollResponse(body: unknown): PollResponse {
  const checked = checkPollResponse(body);
  if ('failure' in checked) throw makeClientError(checked.failure);
  return checked.response;
}
