import { describe, expect, it } from 'vitest';
import { createLongPoller, memoryCursorStore, type PollMessage } from '../../src/client/index.js';
import { createSeenIdWindow } from '../../src/client/core/seen-ids.js';
import { createFakeGateway, FAST_BACKOFF, jsonResponse, waitFor } from './support/fake-gateway.js';
import { pollerOptions, usePollers } from './support/pollers.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

const pollers = usePollers();

function startCollecting(gateway: ReturnType<typeof createFakeGateway>, cursorStore = memoryCursorStore()) {
  const received: PollMessage[] = [];
  const poller = pollers.start(
    createLongPoller(
      pollerOptions(gateway, {
        backoff: FAST_BACKOFF,
        cursorStore,
        onMessages: (messages) => {
          received.push(...messages);
        },
      }),
    ),
  );
  return { poller, received };
}

describe('de-duplication by message id', () => {
  it('hands a message over once when its response was lost and the gateway redelivers it', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('one');
    gateway.deliver('two');
    // The gateway processes the poll (and would deliver 1 and 2), but the answer never arrives.
    gateway.failNext(() => 'lose-response');
    const { received } = startCollecting(gateway);
    await waitFor(() => received.length >= 2, 2000, 'redelivered messages');
    gateway.deliver('three');
    await waitFor(() => received.length >= 3, 2000, 'third message');
    expect(received.map((message) => message.body)).toEqual(['one', 'two', 'three']);
  });

  it('drops repeats inside a batch and ids already delivered in earlier batches', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const message = (id: number) => ({ id, from: 'bob', body: `m${id}`, createdAt: '2024-01-01T00:00:00.000Z' });
    gateway.failNext(
      () => jsonResponse(200, { messages: [message(1), message(2), message(2)], cursor: 2 }),
      // At-least-once: an old id shows up again together with a new one.
      () => jsonResponse(200, { messages: [message(2), message(3)], cursor: 3 }),
    );
    const { received } = startCollecting(gateway);
    await waitFor(() => received.length >= 3 && gateway.polls().length >= 3, 2000, 'both batches');
    expect(received.map((m) => m.id)).toEqual([1, 2, 3]);
  });

  it('recognises a redelivery after a restart because seen ids are persisted with the cursor', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const cursorStore = memoryCursorStore({ cursor: 0, seen: { ids: [1, 2] } });
    gateway.deliver('already handled before the restart');
    gateway.deliver('also handled');
    gateway.deliver('new');
    const { received } = startCollecting(gateway, cursorStore);
    await waitFor(() => received.length >= 1 && gateway.acknowledged === 3, 2000, 'new message');
    expect(received.map((m) => m.body)).toEqual(['new']);
    const saved = await cursorStore.load();
    expect(saved).toEqual({ cursor: 3, clientId: ANY_CLIENT_ID, seen: { ids: [1, 2, 3] } });
  });
});

describe('SeenIdWindow', () => {
  it('forgets the oldest ids beyond its capacity and raises the low-water mark instead', () => {
    const window = createSeenIdWindow(3);
    for (const id of [5, 1, 3, 4]) window.add(id);
    expect(window.snapshot()).toEqual({ lowWaterMark: 1, ids: [3, 4, 5] });
    expect(window.has(1)).toBe(true);
    expect(window.has(0)).toBe(true);
    expect(window.has(2)).toBe(false);
    window.add(2);
    expect(window.snapshot()).toEqual({ lowWaterMark: 2, ids: [3, 4, 5] });
    expect(window.has(6)).toBe(false);
  });

  it('restores from a snapshot, ignoring ids at or below its low-water mark', () => {
    const window = createSeenIdWindow(10, { lowWaterMark: 7, ids: [9, 3, 8, 9] });
    expect(window.snapshot()).toEqual({ lowWaterMark: 7, ids: [8, 9] });
    expect(window.has(5)).toBe(true);
    expect(window.has(10)).toBe(false);
  });
});
