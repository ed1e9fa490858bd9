import { afterEach } from 'vitest';
import type { LongPollerOptions, Poller, ShortPollerOptions } from '../../../src/client/index.js';
import type { createFakeGateway } from './fake-gateway.js';

/** Options either poller accepts (`wait` is only read by the long poller, `intervalMs` only by the short one). */
export type TestPollerOptions = LongPollerOptions & ShortPollerOptions;

/**
 * The options every poller test against the fake gateway shares: its base URL, a fixed token, the
 * gateway's `fetch` and long polls (the fake gateway serves polls only: these tests are about
 * polling), with `overrides` on top (any of them may be overridden too). Nothing else is set, so
 * the backoff, limit, cursor store and the rest stay at the client's defaults unless a test asks
 * for them (e.g. `backoff: FAST_BACKOFF`).
 */
export function pollerOptions(
  gateway: ReturnType<typeof createFakeGateway>,
  overrides: Partial<TestPollerOptions> & Pick<TestPollerOptions, 'onMessages'>,
): TestPollerOptions {
  return { url: 'http://gateway.test/', token: 't', fetch: gateway.fetch, transports: ['long-poll'], ...overrides };
}

/**
 * Registers an `afterEach` that stops every poller handed to `track` or `start` during the test, so
 * that a failing test leaves no poll running. Call it once, at the top of a test file.
 */
export function usePollers() {
  const pollers: Poller[] = [];
  afterEach(async () => {
    await Promise.all(pollers.splice(0).map((poller) => poller.stop()));
  });
  return {
    /** Stops `poller` after the test; returns it. */
    track(poller: Poller): Poller {
      pollers.push(poller);
      return poller;
    },
    /** Tracks `poller` and starts it without waiting for the run to end; returns it. */
    start(poller: Poller): Poller {
      pollers.push(poller);
      void poller.start();
      return poller;
    },
  };
}
