import { describe, expect, it, vi } from 'vitest';
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
    [{ transports: [] }, "Expected `transports` to be a non-empty array of 'websocket', 'sse' and 'long-poll' (each at most once), got object"],
    [{ transports: ['sse', 'sse'] }, "Expected `transports` to be a non-empty array of 'websocket', 'sse' and 'long-poll' (each at most once), got object"],
    [{ transports: ['polling'] }, "Expected `transports` to be a non-empty array of 'websocket', 'sse' and 'long-poll' (each at most once), got object"],
    [{ transports: 'sse' }, "Expected `transports` to be a non-empty array of 'websocket', 'sse' and 'long-poll' (each at most once), got \"sse\""],
    [{ WebSocket: 'ws' }, 'Expected `WebSocket` to be a function, got "ws"'],
    [{ fallbackAfterMs: 0 }, 'Expected `fallbackAfterMs` to be a number >= 1, got 0'],
    [{ probeIntervalMs: -5 }, 'Expected `probeIntervalMs` to be a number >= 1, got -5'],
  ])('%o', (override, message) => {
    expect(() => createLongPoller({ ...valid, ...(override as object) })).toThrow(message);
  });

  it('skips the WebSocket where there is none, and refuses a list of nothing else', () => {
    // As in Node 20 (Node 22 and browsers have a global WebSocket).
    vi.stubGlobal('WebSocket', undefined);
    try {
      expect(() => createLongPoller({ ...valid, transports: ['websocket', 'sse'] })).not.toThrow();
      expect(() => createLongPoller({ ...valid, transports: ['websocket'] })).toThrow(
        "Expected `WebSocket` to be a WebSocket constructor for the 'websocket' transport (no global WebSocket in this environment; pass one in, e.g. the `ws` package's)",
      );
    } finally {
      vi.unstubAllGlobals();
    }
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
