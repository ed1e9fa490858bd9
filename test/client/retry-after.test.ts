import { describe, expect, it } from 'vitest';
import { createLongPoller, type PollerStatus } from '../../src/client/index.js';
import { createFakeGateway, errorResponse, FAST_BACKOFF, waitFor } from './support/fake-gateway.js';
import { pollerOptions, usePollers } from './support/pollers.js';

const pollers = usePollers();

function startPoller(gateway: ReturnType<typeof createFakeGateway>, statuses: PollerStatus[], received: unknown[]) {
  return pollers.start(
    createLongPoller(
      pollerOptions(gateway, {
        backoff: FAST_BACKOFF,
        onMessages: (messages) => void received.push(...messages.map((message) => message.body)),
        onStatus: (status) => void statuses.push(status),
      }),
    ),
  );
}

describe('retrying transient failures', () => {
  it('waits at least Retry-After seconds after a 429 even though the backoff is a few ms', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('after the rate limit');
    gateway.failNext(() => errorResponse(429, 'rate_limited', { 'Retry-After': '1' }));
    const statuses: PollerStatus[] = [];
    const received: unknown[] = [];
    startPoller(gateway, statuses, received);
    await waitFor(() => received.length === 1, 4000, 'delivery after the 429');
    const [limited, retried] = gateway.polls();
    expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(990);
    expect(statuses.find((status) => status.type === 'retrying')).toMatchObject({
      attempt: 1,
      delayMs: 1000,
      error: { code: 'rate_limited', status: 429, retryAfterMs: 1000 },
    });
  });

  it('retries network errors and 5xx with growing, capped backoff and reports each attempt', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('finally');
    gateway.failNext(
      () => Promise.reject(new TypeError('fetch failed')),
      () => errorResponse(500, 'internal_error'),
      () => new Response('<html>bad gateway</html>', { status: 502 }),
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
    );
    const statuses: PollerStatus[] = [];
    const received: unknown[] = [];
    startPoller(gateway, statuses, received);
    await waitFor(() => received.length === 1, 2000, 'delivery after failures');
    const retries = statuses.filter((status) => status.type === 'retrying');
    expect(retries.map((status) => [status.attempt, status.error.code])).toEqual([
      [1, 'network_error'],
      [2, 'internal_error'],
      [3, 'http_error'],
      [4, 'store_unavailable'],
    ]);
    for (const status of retries) {
      const ceiling = Math.min(FAST_BACKOFF.maxDelayMs, FAST_BACKOFF.minDelayMs * 2 ** (status.attempt - 1));
      expect(status.delayMs).toBeGreaterThanOrEqual(ceiling / 2);
      expect(status.delayMs).toBeLessThanOrEqual(ceiling);
    }
    // 'connected' follows the recovery.
    const connectedIndex = statuses.findIndex((status) => status.type === 'connected');
    expect(connectedIndex).toBeGreaterThan(statuses.indexOf(retries.at(-1)!));
    expect(received).toEqual(['finally']);
  });

  it('lowers `wait` to the server maximum instead of failing on invalid_wait', async () => {
    const gateway = createFakeGateway({ holdMs: 20, waitMax: 7 });
    gateway.deliver('hello');
    const statuses: PollerStatus[] = [];
    const received: unknown[] = [];
    startPoller(gateway, statuses, received);
    await waitFor(() => received.length === 1, 2000, 'delivery');
    expect(gateway.polls().slice(0, 2).map((request) => request.url.searchParams.get('wait'))).toEqual(['25', '7']);
    expect(statuses.some((status) => status.type === 'retrying' || status.type === 'stopped')).toBe(false);
  });

  it('halves `wait` until accepted when invalid_wait does not say the maximum', async () => {
    const gateway = createFakeGateway({ holdMs: 20, waitMax: 7, waitMaxOnErrors: false });
    gateway.deliver('hello');
    const statuses: PollerStatus[] = [];
    const received: unknown[] = [];
    startPoller(gateway, statuses, received);
    await waitFor(() => received.length === 1, 2000, 'delivery');
    expect(gateway.polls().slice(0, 3).map((request) => request.url.searchParams.get('wait'))).toEqual(['25', '12', '6']);
    expect(statuses.some((status) => status.type === 'retrying' || status.type === 'stopped')).toBe(false);
  });
});
