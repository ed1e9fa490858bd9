import { describe, expect, it } from 'vitest';
import {
  createLongPoller,
  localStorageCursorStore,
  memoryCursorStore,
  type PollCheckpoint,
  type PollerStatus,
} from '../../src/client/index.js';
import { createFakeGateway, FAST_BACKOFF, waitFor } from './support/fake-gateway.js';
import { pollerOptions, usePollers } from './support/pollers.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

const pollers = usePollers();

describe('resuming from the cursor store', () => {
  it('sends the persisted cursor with the first poll and continues from there', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    for (const body of ['a', 'b', 'c', 'd']) gateway.deliver(body);
    const cursorStore = memoryCursorStore();
    const bodies: unknown[] = [];
    const onMessages = (messages: { body: unknown }[]) => {
      bodies.push(...messages.map((message) => message.body));
    };

    const first = pollers.track(
      createLongPoller(
        pollerOptions(gateway, {
          limit: 2,
          cursorStore,
          onMessages: (messages) => {
            onMessages(messages);
            // Stopping from inside the callback: the batch is still committed, nothing more is fetched.
            void first.stop();
          },
        }),
      ),
    );
    const stopped = await first.start();
    expect(stopped).toEqual({ type: 'stopped', reason: 'stop' });
    expect(first.cursor).toBe(2);
    expect(bodies).toEqual(['a', 'b']);

    const second = pollers.start(createLongPoller(pollerOptions(gateway, { limit: 2, cursorStore, onMessages })));
    await waitFor(() => bodies.length >= 4, 2000, 'second page');
    expect(gateway.polls().map((request) => request.url.searchParams.get('cursor')).slice(0, 2)).toEqual(['0', '2']);
    expect(bodies).toEqual(['a', 'b', 'c', 'd']);
    expect(second.cursor).toBe(4);
  });

  it('saves the checkpoint only after onMessages returned, and redelivers when it throws', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('x');
    const saves: PollCheckpoint[] = [];
    const statuses: PollerStatus[] = [];
    let calls = 0;
    pollers.start(
      createLongPoller(
        pollerOptions(gateway, {
          backoff: FAST_BACKOFF,
          cursorStore: { load: () => undefined, save: (checkpoint) => void saves.push(checkpoint) },
          onStatus: (status) => void statuses.push(status),
          onMessages: async () => {
            calls++;
            expect(saves).toHaveLength(0);
            await new Promise((resolve) => setTimeout(resolve, 5));
            if (calls === 1) throw new Error('database down');
          },
        }),
      ),
    );
    await waitFor(() => saves.length >= 1, 2000, 'a save');
    expect(calls).toBe(2);
    expect(saves[0]).toEqual({ cursor: 1, clientId: ANY_CLIENT_ID, seen: { ids: [1] } });
    const retrying = statuses.find((status) => status.type === 'retrying');
    expect(retrying).toMatchObject({ type: 'retrying', attempt: 1, error: { code: 'callback_failed' } });
    // The failed batch was not acknowledged: the retry poll still carried cursor 0.
    expect(gateway.polls().map((request) => request.url.searchParams.get('cursor')).slice(0, 2)).toEqual(['0', '0']);
  });

  it('persists to localStorage-like storage and reads it back', async () => {
    const data = new Map<string, string>();
    const storage = { getItem: (key: string) => data.get(key) ?? null, setItem: (key: string, value: string) => void data.set(key, value) };
    const store = localStorageCursorStore('inbox:alice', storage);
    expect(await store.load()).toBeUndefined();
    await store.save({ cursor: 9, seen: { lowWaterMark: 3, ids: [8, 9] } });
    expect(JSON.parse(data.get('inbox:alice')!)).toEqual({ cursor: 9, seen: { lowWaterMark: 3, ids: [8, 9] } });
    expect(await store.load()).toEqual({ cursor: 9, seen: { lowWaterMark: 3, ids: [8, 9] } });
    data.set('inbox:alice', '{not json');
    expect(await store.load()).toBeUndefined();
  });

  it('stops with cursor_store_failed when the store returns garbage', async () => {
    const gateway = createFakeGateway();
    const poller = createLongPoller(
      pollerOptions(gateway, {
        cursorStore: { load: () => ({ cursor: -5 }) as unknown as PollCheckpoint, save: () => {} },
        onMessages: () => {},
      }),
    );
    const result = await poller.start();
    expect(result).toMatchObject({ type: 'stopped', reason: 'error', error: { code: 'cursor_store_failed' } });
    expect(gateway.requests).toHaveLength(0);
  });
});
