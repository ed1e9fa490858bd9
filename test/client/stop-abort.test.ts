import { describe, expect, it } from 'vitest';
import { createLongPoller, type PollerStatus } from '../../src/client/index.js';
import { createFakeGateway, FAST_BACKOFF, waitFor } from './support/fake-gateway.js';
import { pollerOptions } from './support/pollers.js';

describe('stopping a poller', () => {
  it('stop() aborts the long poll in flight and sends nothing afterwards', async () => {
    const gateway = createFakeGateway({ holdMs: 60_000 });
    const statuses: PollerStatus[] = [];
    const poller = createLongPoller(pollerOptions(gateway, { onMessages: () => {}, onStatus: (status) => void statuses.push(status) }));
    const done = poller.start();
    await waitFor(() => gateway.polls().length === 1, 2000, 'the first poll');
    const startedStopping = Date.now();
    await poller.stop();
    expect(Date.now() - startedStopping).toBeLessThan(1000);
    expect(gateway.polls()[0]!.signal?.aborted).toBe(true);
    expect(await done).toEqual({ type: 'stopped', reason: 'stop' });
    expect(statuses.at(-1)).toEqual({ type: 'stopped', reason: 'stop' });
    expect(statuses.some((status) => status.type === 'retrying')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(gateway.polls()).toHaveLength(1);
  });

  it('stop() interrupts a backoff delay', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(() => Promise.reject(new TypeError('fetch failed')));
    const statuses: PollerStatus[] = [];
    const poller = createLongPoller(
      pollerOptions(gateway, {
        backoff: { minDelayMs: 60_000, maxDelayMs: 60_000, jitter: 0 },
        onMessages: () => {},
        onStatus: (status) => void statuses.push(status),
      }),
    );
    void poller.start();
    await waitFor(() => statuses.some((status) => status.type === 'retrying'), 2000, 'a retry');
    expect(statuses.find((status) => status.type === 'retrying')).toMatchObject({ attempt: 1, delayMs: 60_000, error: { code: 'network_error' } });
    const startedStopping = Date.now();
    await poller.stop();
    expect(Date.now() - startedStopping).toBeLessThan(1000);
    expect(gateway.polls()).toHaveLength(1);
  });

  it('an external AbortSignal stops it too, with reason "signal"', async () => {
    const gateway = createFakeGateway({ holdMs: 60_000 });
    const controller = new AbortController();
    const poller = createLongPoller(pollerOptions(gateway, { onMessages: () => {}, signal: controller.signal, backoff: FAST_BACKOFF }));
    const done = poller.start();
    await waitFor(() => gateway.polls().length === 1, 2000, 'the first poll');
    controller.abort();
    expect(await done).toEqual({ type: 'stopped', reason: 'signal' });
    expect(gateway.polls()[0]!.signal?.aborted).toBe(true);
  });

  it('can be started again after stop() and keeps its cursor', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('first');
    const bodies: unknown[] = [];
    const poller = createLongPoller(pollerOptions(gateway, { onMessages: (m) => void bodies.push(...m.map((x) => x.body)) }));
    void poller.start();
    await waitFor(() => bodies.length === 1, 2000, 'first message');
    await poller.stop();
    gateway.deliver('second');
    void poller.start();
    await waitFor(() => bodies.length === 2, 2000, 'second message');
    await poller.stop();
    expect(bodies).toEqual(['first', 'second']);
    expect(poller.cursor).toBe(2);
  });
});

describe('a throwing onStatus', () => {
  it('is reported but does not stop delivery', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('still delivered');
    const bodies: unknown[] = [];
    const logged: unknown[] = [];
    const originalError = console.error;
    console.error = (...args: unknown[]) => void logged.push(args);
    try {
      const poller = createLongPoller(
        pollerOptions(gateway, {
          onMessages: (messages) => void bodies.push(...messages.map((message) => message.body)),
          onStatus: () => {
            throw new Error('bug in the status handler');
          },
        }),
      );
      void poller.start();
      await waitFor(() => bodies.length === 1, 2000, 'delivery');
      await poller.stop();
    } finally {
      console.error = originalError;
    }
    expect(bodies).toEqual(['still delivered']);
    expect(logged.length).toBeGreaterThan(0);
  });
});
