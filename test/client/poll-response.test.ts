import { describe, expect, it } from 'vitest';
import { parsePollResponse } from './support/parse-poll.js';

const message = { id: 1, from: 'alice', body: 'x', createdAt: '2026-11-27T10:00:00.000Z' };

describe('poll response parsing', () => {
  it('passes a message’s expiresAt through, and accepts messages without one', () => {
    const parsed = parsePollResponse({ messages: [{ ...message, expiresAt: '2026-11-27T11:00:00.000Z' }, { ...message, id: 2 }], cursor: 2 });
    expect(parsed.messages.map((m) => m.expiresAt)).toEqual(['2026-11-27T11:00:00.000Z', undefined]);
  });

  it('refuses an expiresAt that is not a string', () => {
    expect(() => parsePollResponse({ messages: [{ ...message, expiresAt: 12 }], cursor: 1 })).toThrow(/expiresAt/);
  });
});
