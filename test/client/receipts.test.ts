import { describe, expect, it } from 'vitest';
import {
  createLongPoller,
  createShortPoller,
  memoryCursorStore,
  type CursorStore,
  type DeliveryReceipt,
  type PollCheckpoint,
  type PollerStatus,
} from '../../src/client/index.js';
import { parsePollResponse } from './support/parse-poll.js';
import { createSeenIdWindow } from '../../src/client/core/seen-ids.js';
import { createFakeGateway, FAST_BACKOFF, jsonResponse, waitFor } from './support/fake-gateway.js';
import { pollerOptions, usePollers } from './support/pollers.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

const pollers = usePollers();

const receipt = (id: number, to = 'bob'): DeliveryReceipt => ({ id, to, status: 'acked', at: '2026-11-27T10:00:00.000Z' });
const message = (id: number) => ({ id, from: 'bob', body: `m${id}`, createdAt: '2026-11-27T10:00:00.000Z' });

function startPoller(gateway: ReturnType<typeof createFakeGateway>, options: { cursorStore?: CursorStore; withReceipts?: boolean; onReceipts?: (receipts: DeliveryReceipt[]) => void } = {}) {
  const receipts: DeliveryReceipt[] = [];
  const messageIds: number[] = [];
  const statuses: PollerStatus[] = [];
  const poller = pollers.start(
    createLongPoller(
      pollerOptions(gateway, {
        backoff: FAST_BACKOFF,
        cursorStore: options.cursorStore ?? memoryCursorStore(),
        onMessages: (messages) => void messageIds.push(...messages.map((m) => m.id)),
        onReceipts: options.withReceipts === false ? undefined : (options.onReceipts ?? ((batch) => void receipts.push(...batch))),
        onStatus: (status) => statuses.push(status),
      }),
    ),
  );
  return { poller, receipts, messageIds, statuses };
}

describe('delivery receipts in the pollers', () => {
  it('hands receipts to onReceipts before the checkpoint that covers them is saved', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const events: string[] = [];
    const cursorStore: CursorStore = {
      load: () => undefined,
      save: (checkpoint: PollCheckpoint) => void events.push(`save ${checkpoint.cursor}`),
    };
    gateway.deliver('hello');
    gateway.deliverReceipt(41, 'bob');
    const { receipts } = startPoller(gateway, { cursorStore, onReceipts: (batch) => void events.push(`receipts ${batch.map((r) => `${r.id}@${r.to}`).join()}`) });
    await waitFor(() => events.length >= 2, 2000, 'receipts and save');
    expect(events).toEqual(['receipts 41@bob', 'save 2']);
    expect(receipts).toEqual([]);
  });

  it('passes the parsed receipt and the cursor it will save', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(() => jsonResponse(200, { messages: [], receipts: [receipt(7, 'agent-1')], cursor: 12 }));
    const contexts: number[] = [];
    const got: DeliveryReceipt[] = [];
    pollers.start(
      createLongPoller(
        pollerOptions(gateway, {
          onMessages: () => {},
          onReceipts: (batch, { cursor }) => {
            got.push(...batch);
            contexts.push(cursor);
          },
        }),
      ),
    );
    await waitFor(() => got.length === 1, 2000, 'the receipt');
    expect(got).toEqual([receipt(7, 'agent-1')]);
    expect(contexts).toEqual([12]);
  });

  it('advances the cursor past a receipts-only response without calling onMessages', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliverReceipt(3);
    gateway.deliverReceipt(5);
    const { receipts, messageIds, poller } = startPoller(gateway);
    await waitFor(() => gateway.polls().length >= 2, 2000, 'the next poll');
    expect(receipts.map((r) => r.id)).toEqual([3, 5]);
    expect(messageIds).toEqual([]);
    expect(gateway.polls()[1]!.url.searchParams.get('cursor')).toBe('2');
    expect(poller.cursor).toBe(2);
  });

  it('skips receipts without onReceipts but still moves the cursor past them', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const cursorStore = memoryCursorStore();
    gateway.deliverReceipt(3);
    gateway.deliver('after the receipt');
    const { messageIds } = startPoller(gateway, { cursorStore, withReceipts: false });
    await waitFor(() => gateway.acknowledged === 2, 2000, 'the ack of both');
    expect(messageIds).toEqual([2]);
    // Nothing is remembered for receipts nobody asked for: the checkpoint keeps its old shape.
    expect(await cursorStore.load()).toEqual({ cursor: 2, clientId: ANY_CLIENT_ID, seen: { ids: [2] } });
  });

  it('drops repeated receipts by message id, apart from message ids, also after a restart', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const cursorStore = memoryCursorStore({ cursor: 0, seen: { ids: [] }, seenReceipts: { ids: [9] } });
    gateway.failNext(
      // A message and a receipt may share a number: they are different things.
      () => jsonResponse(200, { messages: [message(5)], receipts: [receipt(5), receipt(6), receipt(6)], cursor: 3 }),
      // Redelivered after a lost ack, together with a new one and one handed over before a restart.
      () => jsonResponse(200, { messages: [], receipts: [receipt(6), receipt(2), receipt(9)], cursor: 6 }),
    );
    const { receipts, messageIds } = startPoller(gateway, { cursorStore });
    await waitFor(() => gateway.polls().length >= 3, 2000, 'both scripted answers');
    expect(messageIds).toEqual([5]);
    expect(receipts.map((r) => r.id)).toEqual([5, 6, 2]);
    expect(await cursorStore.load()).toEqual({ cursor: 6, clientId: ANY_CLIENT_ID, seen: { ids: [5] }, seenReceipts: { ids: [2, 5, 6, 9] } });
  });

  it('redelivers receipts whose onReceipts threw, without repeating the messages already handed over', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('one');
    gateway.deliverReceipt(40);
    let calls = 0;
    const got: number[] = [];
    const { messageIds, statuses } = startPoller(gateway, {
      onReceipts: (batch) => {
        calls += 1;
        if (calls === 1) throw new Error('render failed');
        got.push(...batch.map((r) => r.id));
      },
    });
    await waitFor(() => got.length === 1, 2000, 'the redelivered receipt');
    expect(messageIds).toEqual([1]);
    expect(got).toEqual([40]);
    expect(gateway.polls()[1]!.url.searchParams.get('cursor')).toBe('0');
    expect(statuses.find((status) => status.type === 'retrying')).toMatchObject({ error: { code: 'callback_failed', message: 'onReceipts threw: render failed' } });
  });

  it('retries a response with an invalid receipt as a protocol error, handing nothing over', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(() => jsonResponse(200, { messages: [message(1)], receipts: [{ id: 1, to: 'bob', status: 'read', at: 'x' }], cursor: 1 }));
    const { messageIds, statuses } = startPoller(gateway);
    await waitFor(() => gateway.polls().length >= 2, 2000, 'the retry');
    expect(messageIds).toEqual([]);
    expect(statuses[0]).toMatchObject({ type: 'retrying', error: { code: 'invalid_response' } });
    expect(gateway.polls()[1]!.url.searchParams.get('cursor')).toBe('0');
  });

  it('counts receipts towards a full page, so the short poller drains a backlog at once', async () => {
    const gateway = createFakeGateway();
    gateway.deliverReceipt(1);
    gateway.deliverReceipt(2);
    gateway.deliverReceipt(3);
    const got: number[] = [];
    pollers.start(
      createShortPoller(
        pollerOptions(gateway, {
          limit: 2,
          intervalMs: 60_000,
          onMessages: () => {},
          onReceipts: (batch) => void got.push(...batch.map((r) => r.id)),
        }),
      ),
    );
    await waitFor(() => got.length === 3, 2000, 'the second page without waiting out the interval');
    expect(got).toEqual([1, 2, 3]);
  });

  it('validates onReceipts', () => {
    expect(() => createLongPoller(pollerOptions(createFakeGateway(), { onMessages: () => {}, onReceipts: 1 as never }))).toThrow('Expected `onReceipts` to be a function, got 1');
  });
});

describe('parsePollResponse and receipts', () => {
  it('treats a missing `receipts` as none and passes valid ones through', () => {
    expect(parsePollResponse({ messages: [], cursor: 1 }).receipts).toEqual([]);
    expect(parsePollResponse({ messages: [], receipts: [{ ...receipt(1), type: 'receipt' }], cursor: 1 }).receipts).toEqual([{ ...receipt(1), type: 'receipt' }]);
  });

  it.each([
    ['not an array', { id: 1 }],
    ['a string id', [{ ...receipt(1), id: '1' }]],
    ['no recipient', [{ id: 1, status: 'acked', at: 'x' }]],
    ['another status', [{ ...receipt(1), status: 'delivered' }]],
    ['a numeric time', [{ ...receipt(1), at: 0 }]],
    ['null', [null]],
  ])('refuses receipts with %s as a protocol error', (_, receipts) => {
    expect(() => parsePollResponse({ messages: [], receipts, cursor: 1 })).toThrow(expect.objectContaining({ name: 'ClientProtocolError', code: 'invalid_response' }));
  });
});

describe('SeenIdWindow for ids that arrive out of order', () => {
  it('never counts a late small id as seen after overflow, unlike the ascending window', () => {
    const receipts = createSeenIdWindow(2, undefined, false);
    for (const id of [50, 60, 70]) receipts.add(id);
    expect(receipts.snapshot()).toEqual({ ids: [60, 70] });
    expect(receipts.has(10)).toBe(false);
    expect(receipts.has(60)).toBe(true);
    // A stored low-water mark would also mean "seen": it is ignored.
    expect(createSeenIdWindow(5, { lowWaterMark: 40, ids: [50] }, false).has(10)).toBe(false);
  });
});
