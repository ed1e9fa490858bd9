import { describe, expect, it } from 'vitest';
import { createShortPoller, type PollerStatus, type PollMessage } from '../../src/client/index.js';
import { createFakeGateway, FAST_BACKOFF, waitFor } from './support/fake-gateway.js';
import { pollerOptions } from './support/pollers.js';

describe('createShortPoller', () => {
  it('polls with wait=0 every intervalMs', async () => {
    const gateway = createFakeGateway({ holdMs: 60_000 });
    const received: PollMessage[] = [];
    const poller = createShortPoller(pollerOptions(gateway, { intervalMs: 40, onMessages: (m) => void received.push(...m) }));
    void poller.start();
    await waitFor(() => gateway.polls().length >= 2, 2000, 'two polls');
    gateway.deliver('ping');
    await waitFor(() => gateway.polls().length >= 5, 2000, 'five polls');
    await poller.stop();
    const polls = gateway.polls();
    expect(polls.every((request) => request.url.searchParams.get('wait') === '0')).toBe(true);
    for (let index = 1; index < polls.length; index++) {
      expect(polls[index]!.at - polls[index - 1]!.at).toBeGreaterThanOrEqual(38);
    }
    expect(received.map((message) => message.body)).toEqual(['ping']);
  });

  it('short-polls whatever transports it is given, and says so when connected', async () => {
    const gateway = createFakeGateway();
    const statuses: PollerStatus[] = [];
    // The long poller's option, given to the short one (a shared options object): ignored.
    const options = { ...pollerOptions(gateway, { intervalMs: 20, onMessages: () => {}, onStatus: (status) => void statuses.push(status) }), transports: ['websocket', 'sse'] };
    const poller = createShortPoller(options);
    void poller.start();
    await waitFor(() => statuses.length > 0, 2000, 'the first answer');
    await poller.stop();
    expect(statuses[0]).toEqual({ type: 'connected', cursor: 0, transport: 'short-poll' });
    expect(gateway.requests.every((request) => request.url.pathname === '/v1/poll')).toBe(true);
  });

  it('drains a backlog without waiting when a page comes back full', async () => {
    const gateway = createFakeGateway();
    for (let index = 0; index < 5; index++) gateway.deliver(index);
    const received: PollMessage[] = [];
    const poller = createShortPoller(pollerOptions(gateway, { intervalMs: 60_000, limit: 2, onMessages: (m) => void received.push(...m) }));
    void poller.start();
    await waitFor(() => received.length === 5, 2000, 'the whole backlog');
    await poller.stop();
    expect(gateway.polls()).toHaveLength(3);
    expect(received.map((message) => message.body)).toEqual([0, 1, 2, 3, 4]);
  });

  it('backs off on failure like the long poller', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(() => Promise.reject(new TypeError('fetch failed')));
    gateway.deliver('recovered');
    const received: PollMessage[] = [];
    const attempts: number[] = [];
    const poller = createShortPoller(
      pollerOptions(gateway, {
        intervalMs: 60_000,
        backoff: FAST_BACKOFF,
        onMessages: (m) => void received.push(...m),
        onStatus: (status) => status.type === 'retrying' && attempts.push(status.attempt),
      }),
    );
    void poller.start();
    await waitFor(() => received.length === 1, 2000, 'delivery after a failure');
    await poller.stop();
    expect(attempts).toEqual([1]);
  });

  it('rejects a negative interval', () => {
    expect(() => createShortPoller({ url: 'http://gateway.test', token: 't', intervalMs: -1, onMessages: () => {} })).toThrow(
      'Expected `intervalMs` to be a non-negative number, got -1',
    );
  });
});
