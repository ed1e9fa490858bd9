import { describe, expect, it } from 'vitest';
import { createLongPoller, type FetchLike } from '../../src/client/index.js';

const fetch = (async () => new Response('{}')) as FetchLike;
const valid = { url: 'http://gateway.test', token: 't', fetch, onMessages: () => {} };

describe('poller options are checked up front', () => {
  it.each([
    [{ url: 'not a url' }, 'Expected `url` to be an absolute http(s) URL, got "not a url"'],
    [{ token: '' }, 'Expected `token` to be a non-empty string or a function, got ""'],
    [{ onMessages: 'nope' }, 'Expected `onMessages` to be a function, got "nope"'],
    [{ onPresence: 'nope' }, 'Expected `onPresence` to be a function, got "nope"'],
    [{ wait: 0 }, 'Expected `wait` to be a positive integer (seconds), got 0'],
    [{ wait: 2.5 }, 'Expected `wait` to be a positive integer (seconds), got 2.5'],
    [{ limit: 501 }, 'Expected `limit` to be an integer from 1 to 500, got 501'],
    [{ backoff: { maxDelayMs: -1 } }, 'Expected `backoff.maxDelayMs` to be a non-negative number, got -1'],
    [{ backoff: { jitter: 1.5 } }, 'Expected `backoff.jitter` to be a number from 0 to 1, got 1.5'],
    [{ cursorStore: {} }, 'Expected `cursorStore` to have `load()` and `save(checkpoint)` methods'],
    [{ signal: {} }, 'Expected `signal` to be an AbortSignal, got object'],
  ])('%o', (override, message) => {
    expect(() => createLongPoller({ ...valid, ...(override as object) })).toThrow(message);
  });

  it('accepts a valid configuration without sending anything yet', () => {
    let calls = 0;
    const poller = createLongPoller({ ...valid, fetch: (async () => (calls++, new Response('{}'))) as FetchLike });
    expect(poller.cursor).toBeUndefined();
    // Made up (or read from the checkpoint) when the checkpoint is loaded, at the first start().
    expect(poller.clientId).toBeUndefined();
    expect(calls).toBe(0);
  });
});
