import { describe, expect, it } from 'vitest';
import { createFakeGateway, errorResponse, jsonResponse, waitFor } from './support/fake-gateway.js';
import { fakeJwt, loadLegacyClient, plain, type LegacyApi } from './support/legacy-vm.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

const FAST = { minDelayMs: 1, maxDelayMs: 4, factor: 2, jitter: 0.5 };

describe('legacy client in an ES5-only VM context', () => {
  it('delivers every message once, across a lost response, with access_token and a cache buster', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('one');
    gateway.deliver('two');
    gateway.failNext(() => 'lose-response');
    const { LongPoll, requests } = loadLegacyClient(gateway);
    const received: string[] = [];
    const statuses: Array<{ type: string; attempt?: number; error?: { code: string } }> = [];
    const poller = LongPoll.createLongPoller({
      url: 'http://gateway.test/',
      token: fakeJwt('alice'),
      backoff: FAST,
      onMessages: (messages: Array<{ body: string }>) => received.push(...plain(messages).map((m) => m.body)),
      onStatus: (status: (typeof statuses)[number]) => statuses.push(plain(status)),
    });
    poller.start();
    await waitFor(() => received.length >= 2, 2000, 'first messages');
    gateway.deliver('three');
    await waitFor(() => received.length >= 3, 2000, 'third message');
    poller.stop();
    expect(received).toEqual(['one', 'two', 'three']);
    expect(statuses[0]).toMatchObject({ type: 'retrying', attempt: 1, error: { code: 'network_error' } });

    const polls = requests.filter((request) => request.url.includes('/v1/poll'));
    const busters = polls.map((request) => Number(new URL(request.url).searchParams.get('_')));
    expect(busters.every((value, index) => index === 0 || value > busters[index - 1]!)).toBe(true);
    const query = new URL(polls[0]!.url).searchParams;
    expect(query.get('access_token')).toBe(fakeJwt('alice'));
    expect([query.get('cursor'), query.get('wait'), query.get('limit')]).toEqual(['0', '25', '100']);
    expect(polls[0]!.headers).toEqual({});
  });

  it('resumes from the checkpoint it kept in localStorage under a per-user key', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    gateway.deliver('b');
    const first = loadLegacyClient(gateway);
    const received: string[] = [];
    // The same page in both contexts: a poller for alice with the default storage key.
    const startPage = (LongPoll: LegacyApi) => {
      const poller = LongPoll.createLongPoller({
        url: 'http://gateway.test',
        token: fakeJwt('alice'),
        onMessages: (messages: Array<{ body: string }>) => received.push(...plain(messages).map((m) => m.body)),
      });
      poller.start();
      return poller;
    };
    const poller = startPage(first.LongPoll);
    await waitFor(() => received.length === 2, 2000, 'two messages');
    poller.stop();
    expect(plain(JSON.parse(first.storage.get('longpoll:alice@http://gateway.test/')!))).toEqual({ cursor: 2, clientId: ANY_CLIENT_ID, seen: { ids: [1, 2] } });

    // A "page reload": a fresh context sharing only localStorage.
    gateway.deliver('c');
    const second = loadLegacyClient(gateway, first.storage);
    const poller2 = startPage(second.LongPoll);
    await waitFor(() => received.length === 3, 2000, 'the message after the reload');
    poller2.stop();
    expect(received).toEqual(['a', 'b', 'c']);
    expect(new URL(second.requests[0]!.url).searchParams.get('cursor')).toBe('2');
  });

  it('stop() aborts the poll in flight', async () => {
    const gateway = createFakeGateway({ holdMs: 60_000 });
    const { LongPoll, requests } = loadLegacyClient(gateway);
    const statuses: Array<{ type: string; reason?: string }> = [];
    const poller = LongPoll.createLongPoller({ url: 'http://gateway.test', token: 't', storageKey: false, onMessages: () => {}, onStatus: (s: (typeof statuses)[number]) => statuses.push(plain(s)) });
    poller.start();
    await waitFor(() => requests.length === 1, 2000, 'the first poll');
    poller.stop();
    expect(requests[0]!.aborted).toBe(true);
    expect(gateway.polls()[0]!.signal?.aborted).toBe(true);
    expect(statuses).toEqual([{ type: 'stopped', reason: 'stop' }]);
  });

  it('publishes as text/plain JSON and retries with the same client id', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
      () => new Response(JSON.stringify({ id: 41, duplicate: false }), { status: 201 }),
    );
    const { LongPoll, requests } = loadLegacyClient(gateway);
    const result = await new Promise<{ error: unknown; result?: unknown }>((resolve) => {
      LongPoll.publish({ url: 'http://gateway.test/', token: 'tok', to: 'bob', id: 'c-1', body: { text: 'hi' }, backoff: FAST }, (error, result) =>
        resolve({ error, result: plain(result) }),
      );
    });
    expect(result).toEqual({ error: null, result: { id: 41, duplicate: false, clientId: 'c-1' } });
    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request.method).toBe('POST');
      expect(request.url).toBe('http://gateway.test/v1/messages?access_token=tok');
      expect(request.headers).toEqual({ 'content-type': 'text/plain;charset=UTF-8' });
      expect(JSON.parse(request.body!)).toEqual({ to: 'bob', id: 'c-1', body: { text: 'hi' } });
    }
  });

  it('hands receipts to onReceipts before saving the checkpoint, de-duplicated apart from message ids', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const receipt = (id: number) => ({ id, to: 'bob', status: 'acked', at: '2026-11-27T10:00:00.000Z' });
    gateway.failNext(
      () => jsonResponse(200, { messages: [{ id: 5, from: 'bob', body: 'm5', createdAt: '2026-11-27T10:00:00.000Z' }], receipts: [receipt(5), receipt(6), receipt(6)], cursor: 3 }),
      // Receipts only, with a repeat: the cursor still moves on.
      () => jsonResponse(200, { messages: [], receipts: [receipt(6), receipt(2)], cursor: 5 }),
    );
    const { LongPoll, storage } = loadLegacyClient(gateway);
    const events: string[] = [];
    const poller = LongPoll.createLongPoller({
      url: 'http://gateway.test',
      token: fakeJwt('alice'),
      onMessages: (messages: Array<{ id: number }>) => events.push('messages ' + plain(messages).map((m) => m.id).join()),
      onReceipts: (receipts: Array<{ id: number; to: string }>, context: { cursor: number }) => {
        const saved = storage.get('longpoll:alice@http://gateway.test/');
        events.push(`receipts ${plain(receipts).map((r) => `${r.id}@${r.to}`).join()} for ${context.cursor}, saved ${saved ? JSON.parse(saved).cursor : 'nothing'}`);
      },
    });
    poller.start();
    await waitFor(() => gateway.polls().length >= 3, 2000, 'both scripted answers');
    poller.stop();
    expect(events).toEqual(['messages 5', 'receipts 5@bob,6@bob for 3, saved nothing', 'receipts 2@bob for 5, saved 3']);
    expect(new URL(gateway.polls()[2]!.url).searchParams.get('cursor')).toBe('5');
    expect(JSON.parse(storage.get('longpoll:alice@http://gateway.test/')!)).toEqual({ cursor: 5, clientId: ANY_CLIENT_ID, seen: { ids: [5] }, seenReceipts: { ids: [2, 5, 6] } });
  });

  it('skips receipts without onReceipts, retries on an invalid one, and redelivers when onReceipts throws', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(() => jsonResponse(200, { messages: [], receipts: [{ id: 1, to: 'bob', status: 'read', at: 'x' }], cursor: 1 }));
    gateway.deliverReceipt(7);
    const { LongPoll } = loadLegacyClient(gateway);
    const statuses: Array<{ type: string; error?: { code: string; message: string } }> = [];
    const skipping = LongPoll.createLongPoller({ url: 'http://gateway.test', token: 't', storageKey: false, backoff: FAST, onMessages: () => {}, onStatus: (s: (typeof statuses)[number]) => statuses.push(plain(s)) });
    skipping.start();
    await waitFor(() => skipping.getCursor() === 1, 2000, 'the cursor past the receipt');
    skipping.stop();
    expect(statuses[0]).toMatchObject({ type: 'retrying', error: { code: 'invalid_response' } });

    const throwing = createFakeGateway({ holdMs: 20 });
    throwing.deliverReceipt(7);
    const second = loadLegacyClient(throwing);
    const got: number[] = [];
    let calls = 0;
    const errors: string[] = [];
    const poller = second.LongPoll.createLongPoller({
      url: 'http://gateway.test',
      token: 't',
      storageKey: false,
      backoff: FAST,
      onMessages: () => {},
      onReceipts: (receipts: Array<{ id: number }>) => {
        calls += 1;
        if (calls === 1) throw new Error('render failed');
        got.push(...plain(receipts).map((r) => r.id));
      },
      onStatus: (s: { type: string; error?: { message: string } }) => s.error && errors.push(s.error.message),
    });
    poller.start();
    await waitFor(() => got.length === 1, 2000, 'the redelivered receipt');
    poller.stop();
    expect(got).toEqual([7]);
    expect(errors[0]).toBe('onReceipts threw: Error: render failed');
  });

  it('publishes `receipt: true` only when asked for', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(
      () => new Response(JSON.stringify({ id: 41, duplicate: false }), { status: 201 }),
      () => new Response(JSON.stringify({ id: 42, duplicate: false }), { status: 201 }),
    );
    const { LongPoll, requests } = loadLegacyClient(gateway);
    for (const [id, receipt] of [['c-1', true], ['c-2', false]] as const) {
      await new Promise((resolve) => LongPoll.publish({ url: 'http://gateway.test/', token: 'tok', to: 'bob', id, body: 1, receipt }, resolve));
    }
    expect(requests.map((request) => JSON.parse(request.body!))).toEqual([
      { to: 'bob', id: 'c-1', body: 1, receipt: true },
      { to: 'bob', id: 'c-2', body: 1 },
    ]);
    expect(() => LongPoll.publish({ url: '/', token: 'tok', to: 'bob', body: 1, receipt: 'yes' }, () => {})).toThrow('Expected `receipt` to be a boolean, got "yes"');
  });

  it('publishes `ttl` when given, and refuses one that is not a positive whole number of seconds', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(() => new Response(JSON.stringify({ id: 43, duplicate: false }), { status: 201 }));
    const { LongPoll, requests } = loadLegacyClient(gateway);
    await new Promise((resolve) => LongPoll.publish({ url: 'http://gateway.test/', token: 'tok', to: 'bob', id: 't-1', body: 1, ttl: 60 }, resolve));
    expect(requests.map((request) => JSON.parse(request.body!))).toEqual([{ to: 'bob', id: 't-1', body: 1, ttl: 60 }]);
    for (const ttl of [0, 1.5, '60']) {
      expect(() => LongPoll.publish({ url: '/', token: 'tok', to: 'bob', body: 1, ttl }, () => {})).toThrow('Expected `ttl` to be a positive whole number of seconds');
    }
  });

  it('computes the same backoff bounds as the modern client', () => {
    const { LongPoll } = loadLegacyClient(createFakeGateway());
    const delayFor = LongPoll.backoffDelays({ minDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 0.5 });
    for (let attempt = 1; attempt < 10; attempt++) {
      const ceiling = Math.min(1000, 100 * 2 ** (attempt - 1));
      for (let sample = 0; sample < 200; sample++) {
        const delay = delayFor(attempt);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
    }
    expect(() => LongPoll.backoffDelays({ maxDelayMs: -1 })).toThrow('Expected `maxDelayMs` to be a non-negative number, got -1');
  });
});
