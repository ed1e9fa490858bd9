import { describe, expect, it } from 'vitest';
import { ERROR_STATUS } from '../../src/error-codes.js';
import type { PollCheckpoint } from '../../src/client/index.js';
import { createFakeGateway, errorResponse, jsonResponse, pollParams, waitFor } from './support/fake-gateway.js';
import { SHELLS, type ObservedStatus, type PollerUnderTest } from './support/shells.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

/**
 * One contract for both builds: the modern client (fetch, p-retry, promises) and the legacy
 * bundle (XMLHttpRequest, timers, run in a VM without Promise/fetch/Map/Set). Both wrap the same
 * protocol core, and this suite is what keeps them from drifting apart again.
 */
const FAST = { minDelayMs: 1, maxDelayMs: 4, factor: 2, jitter: 0.5 };
const message = (id: number, extra: object = {}) => ({ id, from: 'bob', body: `m${id}`, createdAt: '2026-11-27T10:00:00.000Z', ...extra });
const ids = (poller: PollerUnderTest) => poller.received.map((received) => received.id);
const stoppedStatus = (poller: PollerUnderTest) => poller.statuses.find((status) => status.type === 'stopped');
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(SHELLS)('client contract: $name', (shell) => {
  it('backs off with jittered, growing delays between failed polls, and reports connected after the first success', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const backoff = { minDelayMs: 20, maxDelayMs: 60, factor: 2, jitter: 0.5 };
    gateway.failNext(
      () => errorResponse(503, 'store_unavailable'),
      () => errorResponse(500, 'internal_error'),
      () => 'lose-response',
      () => errorResponse(503, 'store_unavailable'),
    );
    gateway.deliver('after the outage');
    const poller = shell.load(gateway).createPoller({ token: 't', backoff });
    poller.start();
    await waitFor(() => poller.received.length === 1, 3000, 'the message after four failures');
    await poller.stop();
    const retries = poller.statuses.filter((status) => status.type === 'retrying');
    expect(retries.map((status) => [status.attempt, status.error?.code])).toEqual([
      [1, 'store_unavailable'],
      [2, 'internal_error'],
      [3, 'network_error'],
      [4, 'store_unavailable'],
    ]);
    // Ceilings 20, 40, 60 (capped), 60; equal jitter keeps each delay in [ceiling / 2, ceiling].
    for (const [index, ceiling] of [20, 40, 60, 60].entries()) {
      expect(retries[index]!.delayMs).toBeGreaterThanOrEqual(ceiling / 2);
      expect(retries[index]!.delayMs).toBeLessThanOrEqual(ceiling);
    }
    const times = gateway.polls().map((request) => request.at);
    for (let index = 1; index <= 4; index++) expect(times[index]! - times[index - 1]!).toBeGreaterThanOrEqual(Math.floor(retries[index - 1]!.delayMs!) - 2);
    expect(poller.statuses.filter((status) => status.type === 'connected')).toHaveLength(1);
    expect(poller.statuses.findIndex((status) => status.type === 'connected')).toBe(4);
  });

  it('waits at least as long as Retry-After asks, in seconds or as an HTTP date', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(
      () => errorResponse(429, 'rate_limited', { 'Retry-After': '0.25' }),
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': new Date(Date.now() + 2000).toUTCString() }),
    );
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST });
    poller.start();
    await waitFor(() => gateway.polls().length >= 3, 5000, 'the poll after both refusals');
    await poller.stop();
    const [first, second] = poller.statuses.filter((status) => status.type === 'retrying');
    expect(first).toMatchObject({ attempt: 1, delayMs: 250, error: { code: 'rate_limited', status: 429, retryable: true } });
    // An HTTP date has one-second resolution: somewhere in (1000, 2000] ms from now.
    expect(second!.delayMs).toBeGreaterThan(900);
    const times = gateway.polls().map((request) => request.at);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(245);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(second!.delayMs! - 5);
  });

  // Every code the gateway can answer with, from its own table: 4xx (but 408/429) stop, the rest retry.
  const answers = Object.entries(ERROR_STATUS) as Array<[string, number]>;
  const isFinal = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429;

  // invalid_wait is the one 4xx a poller answers itself: it lowers its wait (next case).
  it.each(answers.filter(([code, status]) => isFinal(status) && code !== 'invalid_wait'))('stops on %s (%i) without another request', async (code, status) => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(() => errorResponse(status, code));
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST });
    poller.start();
    await waitFor(() => stoppedStatus(poller) !== undefined, 2000, 'the stop');
    await pause(30);
    expect(gateway.requests).toHaveLength(1);
    expect(stoppedStatus(poller)).toMatchObject({ reason: 'error', error: { code, status, retryable: false } });
    expect(poller.statuses.filter((observed) => observed.type === 'retrying')).toEqual([]);
  });

  it.each(answers.filter(([, status]) => !isFinal(status)))('retries %s (%i) and goes on polling', async (code, status) => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(() => errorResponse(status, code));
    gateway.deliver('after the refusal');
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the message after the retry');
    await poller.stop();
    expect(poller.statuses.find((observed) => observed.type === 'retrying')).toMatchObject({ attempt: 1, error: { code, status, retryable: true } });
  });

  it.each([
    ['names its maximum', true, ['25', '10', '10']],
    ['does not name its maximum', false, ['25', '12', '6', '6']],
  ])('lowers its wait when the gateway refuses it with invalid_wait and %s', async (_case, namesMaximum, waits) => {
    const gateway = createFakeGateway({ holdMs: 10, waitMax: 10, waitMaxOnErrors: namesMaximum });
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST, wait: 25 });
    poller.start();
    await waitFor(() => gateway.polls().length >= waits.length, 2000, 'the polls');
    await poller.stop();
    expect(gateway.polls().slice(0, waits.length).map((request) => request.url.searchParams.get('wait'))).toEqual(waits);
    expect(poller.statuses.filter((status) => status.type === 'retrying' || status.type === 'stopped')).toEqual([{ type: 'stopped', reason: 'stop' }]);
  });

  it('hands each message over once: repeats in a batch, redeliveries after a lost response, and ids restored from the checkpoint', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(
      () => jsonResponse(200, { messages: [message(1), message(2), message(2)], cursor: 2 }),
      () => jsonResponse(200, { messages: [message(2), message(3)], cursor: 3 }),
      () => jsonResponse(200, { messages: [message(3), message(4), message(5)], cursor: 5 }),
    );
    const client = shell.load(gateway);
    // Restored state: id 4 was handed over before a restart that lost the cursor advance.
    const poller = client.createPoller({ token: 't', cursorStore: client.memoryCursorStore({ cursor: 0, seen: { ids: [4] } }) });
    poller.start();
    await waitFor(() => gateway.polls().length >= 4, 2000, 'three scripted answers');
    await poller.stop();
    expect(ids(poller)).toEqual([1, 2, 3, 5]);
    expect(poller.cursor).toBe(5);
  });

  it('de-duplicates across a restart whose cursor save never reached the server', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    gateway.deliver('b');
    // The answer to the poll is lost after the gateway processed it: the client retries with its old cursor.
    const client = shell.load(gateway);
    const store = client.memoryCursorStore();
    const first = client.createPoller({ token: 't', cursorStore: store, backoff: FAST });
    first.start();
    await waitFor(() => first.received.length === 2, 2000, 'the first two');
    await first.stop();

    // The next process starts from the same store, and the server answers as if the ack was lost.
    gateway.failNext(() => jsonResponse(200, { messages: [message(1), message(2), message(3)], cursor: 3 }));
    const second = client.createPoller({ token: 't', cursorStore: store, backoff: FAST });
    second.start();
    await waitFor(() => second.received.length === 1, 2000, 'the one new message');
    await second.stop();
    expect(ids(first)).toEqual([1, 2]);
    expect(ids(second)).toEqual([3]);
  });

  it('resumes after a reload from the checkpoint in Web Storage: cursor sent back, nothing handed over twice', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const storage = new Map<string, string>();
    gateway.deliver('a');
    gateway.deliver('b');
    const page = shell.load(gateway, storage);
    const first = page.createPoller({ token: 't', cursorStore: page.storageCursorStore('inbox:alice') });
    first.start();
    await waitFor(() => first.received.length === 2, 2000, 'two messages');
    await first.stop();
    expect(JSON.parse(storage.get('inbox:alice')!)).toEqual({ cursor: 2, clientId: ANY_CLIENT_ID, seen: { ids: [1, 2] } });

    gateway.deliver('c');
    const reloaded = shell.load(gateway, storage);
    const second = reloaded.createPoller({ token: 't', cursorStore: reloaded.storageCursorStore('inbox:alice') });
    const pollsBefore = gateway.polls().length;
    second.start();
    await waitFor(() => second.received.length === 1, 2000, 'the message after the reload');
    await second.stop();
    expect(second.received.map((received) => received.body)).toEqual(['c']);
    expect(gateway.polls()[pollsBefore]!.url.searchParams.get('cursor')).toBe('2');
  });

  it('asks the token function before every request, so a refreshed token is used at once', async () => {
    const gateway = createFakeGateway({ holdMs: 10 });
    let generation = 0;
    const client = shell.load(gateway);
    const poller = client.createPoller({ token: () => `token-${++generation}`, backoff: FAST });
    poller.start();
    await waitFor(() => gateway.polls().length >= 3, 2000, 'three polls');
    await poller.stop();
    const tokens = gateway.polls().slice(0, 3).map((request) => client.tokenOf(request));
    expect(tokens).toEqual(['token-1', 'token-2', 'token-3']);
  });

  it('retries when the token function throws (token_unavailable), and goes on delivering', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('after the refresh');
    let calls = 0;
    const client = shell.load(gateway);
    const poller = client.createPoller({
      token: () => {
        calls += 1;
        if (calls <= 2) throw new Error('auth server unreachable');
        return 'fresh';
      },
      backoff: FAST,
    });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the message once a token came');
    await poller.stop();
    expect(poller.statuses.filter((status) => status.type === 'retrying').map((status) => [status.attempt, status.error?.code, status.error?.retryable])).toEqual([
      [1, 'token_unavailable', true],
      [2, 'token_unavailable', true],
    ]);
    expect(poller.statuses.filter((status) => status.type === 'retrying')[0]!.error!.message).toContain('auth server unreachable');
    expect(client.tokenOf(gateway.polls()[0]!)).toBe('fresh');
    expect(stoppedStatus(poller)).toEqual({ type: 'stopped', reason: 'stop' });
  });

  it('refuses to start from a stored checkpoint with bad seen-ids (cursor_store_failed), without polling', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const broken: Array<unknown> = [{ cursor: 3, seen: { ids: [1, 'two'] } }, { cursor: 3, seen: { ids: [1], lowWaterMark: 'x' } }, { cursor: -1, seen: { ids: [] } }];
    for (const stored of broken) {
      const poller = shell.load(gateway).createPoller({ token: 't', cursorStore: { load: () => stored, save: () => {} } });
      poller.start();
      await waitFor(() => stoppedStatus(poller) !== undefined, 2000, 'the stop');
      expect(stoppedStatus(poller)).toMatchObject({ reason: 'error', error: { code: 'cursor_store_failed', retryable: false } });
    }
    expect(gateway.requests).toHaveLength(0);
  });

  it('starts over from cursor 0 when its own Web Storage entry is unreadable', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    const storage = new Map([['inbox:alice', JSON.stringify({ cursor: 9, seen: { ids: ['x'] } })]]);
    const client = shell.load(gateway, storage);
    const poller = client.createPoller({ token: 't', cursorStore: client.storageCursorStore('inbox:alice') });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the message');
    await poller.stop();
    expect(gateway.polls()[0]!.url.searchParams.get('cursor')).toBe('0');
    expect(JSON.parse(storage.get('inbox:alice')!)).toEqual({ cursor: 1, clientId: ANY_CLIENT_ID, seen: { ids: [1] } });
  });

  it('reports a failed checkpoint save as retryable and saves again after the next poll, without handing anything over twice', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    const saved: PollCheckpoint[] = [];
    let saves = 0;
    const store = {
      load: () => undefined,
      save: (checkpoint: PollCheckpoint) => {
        saves += 1;
        if (saves === 1) throw new Error('quota exceeded');
        saved.push(JSON.parse(JSON.stringify(checkpoint)));
      },
    };
    const poller = shell.load(gateway).createPoller({ token: 't', cursorStore: store, backoff: FAST });
    poller.start();
    await waitFor(() => saved.length === 1, 2000, 'the second save');
    await poller.stop();
    const retry = poller.statuses.find((status) => status.type === 'retrying');
    expect(retry).toMatchObject({ attempt: 1, error: { code: 'cursor_store_failed', retryable: true } });
    expect(retry!.error!.message).toContain('quota exceeded');
    // Nothing new arrived, yet the checkpoint that failed to save was saved on the next success.
    expect(saved).toEqual([{ cursor: 1, clientId: ANY_CLIENT_ID, seen: { ids: [1] } }]);
    expect(ids(poller)).toEqual([1]);
    expect(gateway.polls()[1]!.url.searchParams.get('cursor')).toBe('1');
  });

  it('retries a response whose message lacks a valid createdAt, and hands nothing over from it', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(
      () => jsonResponse(200, { messages: [{ id: 1, from: 'bob', body: 'x' }], cursor: 1 }),
      () => jsonResponse(200, { messages: [message(1, { createdAt: 42 })], cursor: 1 }),
      () => jsonResponse(200, { messages: [message(1)], cursor: 1 }),
    );
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the valid answer');
    await poller.stop();
    const retries = poller.statuses.filter((status) => status.type === 'retrying');
    expect(retries.map((status) => status.error?.code)).toEqual(['invalid_response', 'invalid_response']);
    expect(retries[0]!.error!.message).toContain('createdAt');
    expect(ids(poller)).toEqual([1]);
  });

  it('redelivers a batch whose onMessages threw, and only then moves the cursor', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST, failOnMessagesCalls: [1] });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the redelivered message');
    await poller.stop();
    expect(poller.statuses.find((status) => status.type === 'retrying')).toMatchObject({ error: { code: 'callback_failed' } });
    expect(gateway.polls()[1]!.url.searchParams.get('cursor')).toBe('0');
  });

  it('short-polls with wait=0 and pauses intervalMs after a page that was not full', async () => {
    const gateway = createFakeGateway();
    gateway.deliver('x');
    const poller = shell.load(gateway).createPoller({ token: 't', short: true, intervalMs: 40 });
    poller.start();
    await waitFor(() => gateway.polls().length >= 3, 2000, 'three polls');
    await poller.stop();
    expect(gateway.polls().every((request) => request.url.searchParams.get('wait') === '0')).toBe(true);
    const times = gateway.polls().map((request) => request.at);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(38);
    expect(ids(poller)).toEqual([1]);
  });

  it('publishes under one client id across retries and stops on a 4xx', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
      () => 'lose-response',
      () => jsonResponse(201, { id: 41, duplicate: true }),
      () => errorResponse(403, 'forbidden_recipient'),
    );
    const client = shell.load(gateway);
    await expect(client.publish({ token: 'tok', to: 'bob', id: 'c-1', body: { text: 'hi' } })).resolves.toEqual({ id: 41, duplicate: true, clientId: 'c-1' });
    expect(gateway.requests.map((request) => (request.body as { id: string }).id)).toEqual(['c-1', 'c-1', 'c-1']);
    await expect(client.publish({ token: 'tok', to: 'bob', body: 1 })).rejects.toMatchObject({ code: 'forbidden_recipient', status: 403 });
    expect(gateway.requests).toHaveLength(4);
  });

  it('publishes a batch in one request with a result per item, and checks every item before sending', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
      () => jsonResponse(201, { results: [{ id: 7, duplicate: false }, { id: 8, duplicate: true }] }),
    );
    const client = shell.load(gateway);
    const results = await client.publishBatch({ token: 'tok', messages: [{ to: 'bob', id: 'b-1', body: 1, receipt: true }, { to: 'carol', id: 'b-2', body: 2, ttl: 60 }] });
    expect(results).toEqual([
      { id: 7, duplicate: false, clientId: 'b-1' },
      { id: 8, duplicate: true, clientId: 'b-2' },
    ]);
    expect(gateway.requests.map((request) => [request.url.pathname, request.body])).toEqual(
      Array(2).fill(['/v1/messages/batch', { messages: [{ to: 'bob', id: 'b-1', body: 1, receipt: true }, { to: 'carol', id: 'b-2', body: 2, ttl: 60 }] }]),
    );
    await expect(async () => client.publishBatch({ token: 'tok', messages: [{ to: 'bob', body: 1 }, { to: 'not a user id', body: 2 }] })).rejects.toThrow(
      'Expected `messages[1].to` to be a user id matching',
    );
    expect(gateway.requests).toHaveLength(2);
  });

  it('stop() from a status handler ends the poller there: no request is sent after it', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(...Array.from({ length: 5 }, () => () => errorResponse(503, 'store_unavailable')));
    const poller = shell.load(gateway).createPoller({
      token: 't',
      backoff: FAST,
      onStatus: (status, controls) => status.type === 'retrying' && controls.stop(),
    });
    poller.start();
    await waitFor(() => stoppedStatus(poller) !== undefined, 2000, 'the stop');
    await pause(60);
    expect(gateway.requests).toHaveLength(1);
    expect(poller.statuses.map((status) => status.type)).toEqual(['retrying', 'stopped']);
  });

  it('stop() inside onMessages: what was handed over stays handed over, nothing more is handed over or reported, and a restart goes on from there', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    gateway.deliverReceipt(70);
    let stops = 0;
    const poller = shell.load(gateway).createPoller({
      token: 't',
      backoff: FAST,
      receipts: true,
      onMessages: (_messages, controls) => {
        if (stops++ === 0) controls.stop();
      },
    });
    poller.start();
    await waitFor(() => stoppedStatus(poller) !== undefined, 2000, 'the stop');
    await pause(60);
    expect(poller.statuses.map((status) => status.type)).toEqual(['connected', 'stopped']);
    expect(ids(poller)).toEqual([1]);
    expect(poller.receipts).toEqual([]);
    expect(gateway.polls()).toHaveLength(1);

    poller.start();
    await waitFor(() => poller.receipts.length === 1, 2000, 'the receipt after the restart');
    await poller.stop();
    // The answer was not finished, so the cursor did not move: it comes again, and only the receipt is new.
    expect(gateway.polls()[1]!.url.searchParams.get('cursor')).toBe('0');
    expect(ids(poller)).toEqual([1]);
    expect(poller.receipts.map((receipt) => receipt.id)).toEqual([70]);
  });

  it('an async onMessages may await stop() without deadlocking the poller', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    let stopped = false;
    const poller = shell.load(gateway).createPoller({
      token: 't',
      onMessages: async (_messages, controls) => {
        await controls.stopAndWait();
        stopped = true;
      },
    });
    poller.start();
    await waitFor(() => stopped && stoppedStatus(poller) !== undefined, 2000, 'the stop from inside onMessages');
    expect(ids(poller)).toEqual([1]);
    expect(poller.statuses.map((status) => status.type)).toEqual(['connected', 'stopped']);
  });

  it('start() right after an unawaited stop() polls on', async () => {
    const gateway = createFakeGateway({ holdMs: 200 });
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST });
    poller.start();
    await waitFor(() => gateway.polls().length === 1, 2000, 'the first poll');
    void poller.stop();
    poller.start();
    gateway.deliver('after the restart');
    await waitFor(() => poller.received.length === 1, 2000, 'the message');
    await poller.stop();
    expect(poller.statuses.filter((status) => status.type === 'stopped')).toEqual([{ type: 'stopped', reason: 'stop' }, { type: 'stopped', reason: 'stop' }]);
  });

  it('a save that keeps failing is reported every time but does not slow delivery down', async () => {
    const gateway = createFakeGateway({ holdMs: 5000 });
    const store = { load: () => undefined, save: () => {
      throw new Error('quota exceeded');
    } };
    // A backoff this long would show: three deliveries in well under its first step.
    const poller = shell.load(gateway).createPoller({ token: 't', cursorStore: store, backoff: { minDelayMs: 2000, maxDelayMs: 8000, factor: 2, jitter: 0 } });
    poller.start();
    const started = Date.now();
    for (let index = 1; index <= 3; index++) {
      gateway.deliver(`m${index}`);
      await waitFor(() => poller.received.length === index, 1500, `message ${index}`);
    }
    expect(Date.now() - started).toBeLessThan(1500);
    await poller.stop();
    const retries = poller.statuses.filter((status) => status.type === 'retrying');
    expect(retries.map((status) => [status.attempt, status.error?.code, status.delayMs])).toEqual([
      [1, 'cursor_store_failed', 0],
      [2, 'cursor_store_failed', 0],
      [3, 'cursor_store_failed', 0],
    ]);
    expect(gateway.polls().map((request) => request.url.searchParams.get('cursor')).slice(0, 3)).toEqual(['0', '1', '2']);
  });

  it('hands a receipt over once even when it repeats out of order in one answer', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const receipt = (id: number) => ({ id, to: 'carol', status: 'acked', at: '2026-11-27T10:00:00.000Z' });
    gateway.failNext(() => jsonResponse(200, { messages: [], receipts: [receipt(5), receipt(3), receipt(5), receipt(3)], cursor: 4 }));
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST, receipts: true });
    poller.start();
    await waitFor(() => gateway.polls().length >= 2, 2000, 'the poll after the receipts');
    await poller.stop();
    expect(poller.receipts.map((handed) => handed.id)).toEqual([5, 3]);
  });

  it('waits for an onMessages that returns a promise: saved after it resolves, redelivered when it rejects', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('a');
    const events: string[] = [];
    const store = { load: () => undefined, save: (checkpoint: PollCheckpoint) => void events.push(`save ${checkpoint.cursor}`) };
    let calls = 0;
    const poller = shell.load(gateway).createPoller({
      token: 't',
      backoff: FAST,
      cursorStore: store,
      onMessages: () => {
        const call = ++calls;
        events.push(`onMessages ${call}`);
        return new Promise<void>((resolve, reject) =>
          setTimeout(() => {
            events.push(`settled ${call}`);
            if (call === 1) reject(new Error('storage busy'));
            else resolve();
          }, 30),
        );
      },
    });
    poller.start();
    await waitFor(() => events.includes('save 1'), 2000, 'the save');
    await poller.stop();
    expect(events).toEqual(['onMessages 1', 'settled 1', 'onMessages 2', 'settled 2', 'save 1']);
    expect(poller.statuses.find((status) => status.type === 'retrying')).toMatchObject({ error: { code: 'callback_failed' } });
  });
});

/**
 * Topics, on both builds: read beside the mailbox with POST /v1/poll, each from a position the
 * client holds (the gateway keeps none), saved in the checkpoint beside the cursor.
 */
describe.each(SHELLS)('client contract, topics: $name', (shell) => {
  const topicMessage = (topic: string, seq: number, id: number) => ({ ...message(id), topic, seq });
  const topicsAsked = (gateway: ReturnType<typeof createFakeGateway>) => gateway.polls().map((request) => pollParams(request).topics);

  it('reads the `topics` option with POST /v1/poll (a poller without topics keeps GET), and checks topics up front', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    const client = shell.load(gateway);
    const poller = client.createPoller({ token: 't', topics: { 'room:1': 0, news: 'now' } });
    poller.start();
    await waitFor(() => gateway.polls().length >= 1, 2000, 'the first poll');
    await poller.stop();
    const [first] = gateway.polls();
    expect(first!.method).toBe('POST');
    expect(first!.url.pathname).toBe('/v1/poll');
    expect(pollParams(first!)).toEqual({ cursor: 0, wait: 25, limit: 100, client: ANY_CLIENT_ID, topics: { 'room:1': 0, news: null } });

    const plainGateway = createFakeGateway({ holdMs: 20 });
    const mailboxOnly = shell.load(plainGateway).createPoller({ token: 't' });
    mailboxOnly.start();
    await waitFor(() => plainGateway.polls().length >= 1, 2000, 'the first poll');
    await mailboxOnly.stop();
    expect(plainGateway.polls()[0]!.method).toBe('GET');

    expect(() => client.createPoller({ token: 't', topics: { 'no spaces': 0 } })).toThrow('Expected `topics["no spaces"]` to be a topic name matching');
    expect(() => client.createPoller({ token: 't', topics: { room: -1 } })).toThrow("Expected `topics[\"room\"]` to be a whole number from 0 or 'now', got -1");
    expect(() => client.createPoller({ token: 't', topics: { room: 'later' as 'now' } })).toThrow("or 'now', got \"later\"");
    expect(() => poller.subscribe('x'.repeat(129), 0)).toThrow('Expected `topic` to be a topic name matching');
    expect(() => poller.subscribe('room:2', 1.5)).toThrow("Expected `from` to be a whole number from 0 or 'now', got 1.5");
    expect(() => poller.unsubscribe('')).toThrow('Expected `topic` to be a topic name matching');
  });

  it('hands topic messages over after the mailbox\'s, each with its `topic` and `seq`; mailbox messages carry neither', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.deliver('direct');
    const first = gateway.publishToTopic('room:1', 'hello');
    const second = gateway.publishToTopic('room:1', 'again');
    const poller = shell.load(gateway).createPoller({ token: 't', topics: { 'room:1': 0 } });
    poller.start();
    await waitFor(() => poller.received.length === 3 && gateway.polls().length >= 2, 2000, 'three messages, and the poll after them');
    await poller.stop();
    expect(poller.received.map(({ id, body, topic, seq }) => ({ id, body, topic, seq }))).toEqual([
      { id: 1, body: 'direct', topic: undefined, seq: undefined },
      { id: first.id, body: 'hello', topic: 'room:1', seq: 1 },
      { id: second.id, body: 'again', topic: 'room:1', seq: 2 },
    ]);
    expect('topic' in poller.received[0]!).toBe(false);
    expect(topicsAsked(gateway)[1]).toEqual({ 'room:1': 2 });
  });

  it('"now" learns its position from the first answer; the checkpoint keeps it beside the cursor, and a restart resumes exactly', async () => {
    const gateway = createFakeGateway({ holdMs: 50 });
    const storage = new Map<string, string>();
    gateway.publishToTopic('room:1', 'before anyone listened');
    const page = shell.load(gateway, storage);
    const first = page.createPoller({ token: 't', topics: { 'room:1': 'now' }, cursorStore: page.storageCursorStore('inbox') });
    first.start();
    await waitFor(() => gateway.polls().length >= 2, 2000, 'the answer that learns the position');
    gateway.publishToTopic('room:1', 'live');
    await waitFor(() => first.received.length === 1, 2000, 'the live message');
    await first.stop();
    expect(JSON.parse(storage.get('inbox')!)).toEqual({ cursor: 0, clientId: ANY_CLIENT_ID, seen: { ids: [] }, topics: { 'room:1': 2 } });

    gateway.publishToTopic('room:1', 'while away');
    const reloaded = shell.load(gateway, storage);
    const pollsBefore = gateway.polls().length;
    const second = reloaded.createPoller({ token: 't', topics: { 'room:1': 'now' }, cursorStore: reloaded.storageCursorStore('inbox') });
    second.start();
    await waitFor(() => second.received.length === 1, 2000, 'the message sent while away');
    await pause(60);
    await second.stop();
    expect(first.received.map((received) => received.body)).toEqual(['live']);
    expect(second.received.map((received) => received.body)).toEqual(['while away']);
    expect(topicsAsked(gateway)[pollsBefore]).toEqual({ 'room:1': 2 });
  });

  it('loads a checkpoint written before topics; a saved position wins over `from`, and positions of topics no longer read are dropped', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    for (const body of ['a', 'b', 'c']) gateway.publishToTopic('room:1', body);
    gateway.publishToTopic('room:2', 'x');
    const storage = new Map([['inbox', JSON.stringify({ cursor: 3, seen: { ids: [1, 2, 3] } })]]);
    const page = shell.load(gateway, storage);
    const old = page.createPoller({ token: 't', topics: { 'room:1': 2 }, cursorStore: page.storageCursorStore('inbox') });
    old.start();
    await waitFor(() => old.received.length === 1, 2000, 'the message after position 2');
    await old.stop();
    expect(gateway.polls().map((request) => pollParams(request).cursor)[0]).toBe(3);
    expect(old.received.map((received) => received.body)).toEqual(['c']);

    storage.set('inbox', JSON.stringify({ cursor: 3, seen: { ids: [] }, topics: { 'room:1': 1, 'left:room': 7 } }));
    const pollsBefore = gateway.polls().length;
    const resumed = page.createPoller({ token: 't', topics: { 'room:1': 0, 'room:2': 0 }, cursorStore: page.storageCursorStore('inbox') });
    resumed.start();
    await waitFor(() => resumed.received.length === 3, 2000, 'b, c and x');
    await resumed.stop();
    expect(topicsAsked(gateway)[pollsBefore]).toEqual({ 'room:1': 1, 'room:2': 0 });
    expect(resumed.received.map((received) => received.body)).toEqual(['b', 'c', 'x']);
    expect(JSON.parse(storage.get('inbox')!).topics).toEqual({ 'room:1': 3, 'room:2': 1 });
  });

  it('subscribe() abandons the held poll and sends it again at once with the topic; unsubscribe() drops it and its position', async () => {
    const gateway = createFakeGateway({ holdMs: 5000 });
    const client = shell.load(gateway);
    const store = client.memoryCursorStore();
    const poller = client.createPoller({ token: 't', cursorStore: store });
    poller.start();
    await waitFor(() => gateway.polls().length === 1, 2000, 'the held poll');
    const subscribedAt = Date.now();
    poller.subscribe('room:1', 0);
    await waitFor(() => gateway.polls().length === 2, 2000, 'the poll sent again');
    expect(Date.now() - subscribedAt).toBeLessThan(1000);
    expect(gateway.polls()[0]!.signal?.aborted).toBe(true);
    expect(topicsAsked(gateway)).toEqual([undefined, { 'room:1': 0 }]);

    gateway.publishToTopic('room:1', 'hi');
    await waitFor(() => poller.received.length === 1, 2000, 'the topic message');
    await waitFor(() => gateway.polls().length === 3, 2000, 'the poll after it');
    // A repeated subscribe changes nothing: the position held wins over `from`.
    poller.subscribe('room:1', 0);
    await waitFor(() => gateway.polls().length === 4, 2000, 'the poll sent again');
    expect(topicsAsked(gateway)[3]).toEqual({ 'room:1': 1 });

    poller.unsubscribe('room:1');
    await waitFor(() => gateway.polls().length === 5, 2000, 'the poll without the topic');
    expect(topicsAsked(gateway)[4]).toBeUndefined();
    gateway.deliver('direct');
    await waitFor(() => poller.received.length === 2, 2000, 'the mailbox message');
    await poller.stop();
    expect(store.load()).toEqual({ cursor: 1, clientId: ANY_CLIENT_ID, seen: { ids: [1] } });
  });

  it('tells onReset before handing over what follows the gap, and reads on from the oldest message kept', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    for (let index = 1; index <= 5; index++) gateway.publishToTopic('room:1', `m${index}`);
    gateway.trimTopic('room:1', 3);
    const resetsAtHandOver: number[] = [];
    const poller = shell.load(gateway).createPoller({
      token: 't',
      topics: { 'room:1': 1 },
      onMessages: () => void resetsAtHandOver.push(poller.resets.length),
    });
    poller.start();
    await waitFor(() => gateway.polls().length >= 2, 2000, 'the poll after the reset');
    await poller.stop();
    expect(poller.resets).toEqual([{ topic: 'room:1', earliest: 4 }]);
    expect(resetsAtHandOver).toEqual([1]);
    expect(poller.received.map((received) => received.seq)).toEqual([4, 5]);
    expect(topicsAsked(gateway)[1]).toEqual({ 'room:1': 5 });
  });

  it('retries a throwing onReset like onMessages: the reset is told again, nothing is handed over twice', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    for (let index = 1; index <= 3; index++) gateway.publishToTopic('room:1', `m${index}`);
    gateway.trimTopic('room:1', 2);
    let calls = 0;
    const poller = shell.load(gateway).createPoller({
      token: 't',
      backoff: FAST,
      topics: { 'room:1': 0 },
      onReset: () => {
        if (++calls === 1) throw new Error('banner failed');
      },
    });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the message after the gap');
    await poller.stop();
    expect(poller.resets).toEqual([
      { topic: 'room:1', earliest: 3 },
      { topic: 'room:1', earliest: 3 },
    ]);
    expect(poller.statuses.find((status) => status.type === 'retrying')).toMatchObject({ error: { code: 'callback_failed', retryable: true } });
    expect(poller.statuses.find((status) => status.type === 'retrying')!.error!.message).toMatch(/^onReset threw: .*banner failed/);
    expect(poller.received.map((received) => received.seq)).toEqual([3]);
  });

  it.each([
    ['forbidden_topic', 403, { forbiddenTopics: ['secret'] }],
    ['too_many_topics', 400, { topicsMax: 1 }],
  ])('stops on %s (%i) without another request; without the topic it starts again', async (code, status, gatewayOptions) => {
    const gateway = createFakeGateway({ holdMs: 20, ...gatewayOptions });
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST, topics: { 'room:1': 0, secret: 0 } });
    poller.start();
    await waitFor(() => stoppedStatus(poller) !== undefined, 2000, 'the stop');
    await pause(30);
    expect(gateway.requests).toHaveLength(1);
    expect(stoppedStatus(poller)).toMatchObject({ reason: 'error', error: { code, status, retryable: false } });

    poller.unsubscribe('secret');
    gateway.publishToTopic('room:1', 'allowed');
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the message of the topic left');
    await poller.stop();
    expect(topicsAsked(gateway)[1]).toEqual({ 'room:1': 0 });
  });

  it('hands each topic message over once across a lost answer and a throwing onMessages, then moves the position', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.publishToTopic('room:1', 'a');
    gateway.publishToTopic('room:1', 'b');
    gateway.failNext(() => 'lose-response');
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST, topics: { 'room:1': 0 }, failOnMessagesCalls: [1] });
    poller.start();
    await waitFor(() => poller.received.length === 2 && gateway.polls().length >= 4, 2000, 'the poll after the hand-over');
    await poller.stop();
    expect(poller.received.map((received) => received.body)).toEqual(['a', 'b']);
    expect(poller.statuses.filter((status) => status.type === 'retrying').map((status) => status.error?.code)).toEqual(['network_error', 'callback_failed']);
    expect(topicsAsked(gateway).slice(0, 4)).toEqual([{ 'room:1': 0 }, { 'room:1': 0 }, { 'room:1': 0 }, { 'room:1': 2 }]);
  });

  it('hands a topic message over once when it repeats in an answer or comes again at or below the position held', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.failNext(
      () => jsonResponse(200, { messages: [message(1), topicMessage('room:1', 1, 501), topicMessage('room:1', 1, 501), topicMessage('room:1', 2, 502)], cursor: 1, positions: { 'room:1': 2 } }),
      () => jsonResponse(200, { messages: [topicMessage('room:1', 2, 502), topicMessage('room:1', 3, 503)], cursor: 1, positions: { 'room:1': 3 } }),
    );
    const poller = shell.load(gateway).createPoller({ token: 't', topics: { 'room:1': 0 } });
    poller.start();
    await waitFor(() => gateway.polls().length >= 3, 2000, 'the two scripted answers');
    await poller.stop();
    expect(ids(poller)).toEqual([1, 501, 502, 503]);
  });

  it('hands over topic messages whose ids lie below the mailbox ids it has forgotten (topic ids do not ascend with the mailbox\'s)', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.publishToTopic('archive', 'from long ago', 'alice', 2);
    const client = shell.load(gateway);
    const store = client.memoryCursorStore({ cursor: 5, seen: { lowWaterMark: 3, ids: [4, 5] } });
    const poller = client.createPoller({ token: 't', dedupWindow: 2, topics: { archive: 0 }, cursorStore: store });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the archived message');
    await poller.stop();
    expect(poller.received[0]).toMatchObject({ id: 2, topic: 'archive', seq: 1 });
    // Topic messages are recorded by position, not in the mailbox's seen window.
    expect(store.load()).toEqual({ cursor: 5, clientId: ANY_CLIENT_ID, seen: { lowWaterMark: 3, ids: [4, 5] }, topics: { archive: 1 } });
  });

  it('retries an answer that lacks the position of a topic it read (invalid_response), handing nothing over from it', async () => {
    const gateway = createFakeGateway({ holdMs: 20 });
    gateway.publishToTopic('room:1', 'a');
    gateway.failNext(() => jsonResponse(200, { messages: [topicMessage('room:1', 1, 10_001)], cursor: 0 }));
    const poller = shell.load(gateway).createPoller({ token: 't', backoff: FAST, topics: { 'room:1': 0 } });
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the valid answer');
    await poller.stop();
    const retry = poller.statuses.find((status) => status.type === 'retrying');
    expect(retry).toMatchObject({ attempt: 1, error: { code: 'invalid_response', retryable: true } });
    expect(retry!.error!.message).toContain('Expected `positions["room:1"]` in the poll response to be a position');
    expect(ids(poller)).toEqual([10_001]);
  });

  it('publishes to a topic under one client id across retries, resolving with its `seq`; one of `to` and `topic`, checked before sending', async () => {
    const gateway = createFakeGateway();
    gateway.failNext(
      () => errorResponse(503, 'store_unavailable', { 'Retry-After': '0' }),
      () => 'lose-response',
      () => jsonResponse(200, { id: 9, seq: 4, duplicate: true }),
      () => jsonResponse(201, { results: [{ id: 10, duplicate: false }, { id: 11, seq: 5, duplicate: false }] }),
    );
    const client = shell.load(gateway);
    await expect(client.publish({ token: 'tok', topic: 'room:1', id: 't-1', body: { text: 'hi' } })).resolves.toEqual({ id: 9, seq: 4, duplicate: true, clientId: 't-1' });
    expect(gateway.requests.map((request) => request.body)).toEqual(Array(3).fill({ topic: 'room:1', id: 't-1', body: { text: 'hi' } }));
    const results = await client.publishBatch({ token: 'tok', messages: [{ to: 'bob', id: 'b-1', body: 1 }, { topic: 'room:1', id: 'b-2', body: 2, ttl: 60 }] });
    expect(results).toEqual([
      { id: 10, duplicate: false, clientId: 'b-1' },
      { id: 11, seq: 5, duplicate: false, clientId: 'b-2' },
    ]);
    expect(gateway.requests[3]!.body).toEqual({ messages: [{ to: 'bob', id: 'b-1', body: 1 }, { topic: 'room:1', id: 'b-2', body: 2, ttl: 60 }] });

    await expect(async () => client.publish({ token: 'tok', to: 'bob', topic: 'room:1', body: 1 })).rejects.toThrow('Expected exactly one of `to` and `topic`');
    await expect(async () => client.publish({ token: 'tok', body: 1 })).rejects.toThrow('Expected exactly one of `to` and `topic`');
    await expect(async () => client.publish({ token: 'tok', topic: 'room 1', body: 1 })).rejects.toThrow('Expected `topic` to be a topic name matching');
    await expect(async () => client.publishBatch({ token: 'tok', messages: [{ topic: 'ok', body: 1 }, { topic: 'not ok', body: 2 }] })).rejects.toThrow(
      'Expected `messages[1].topic` to be a topic name matching',
    );
    expect(gateway.requests).toHaveLength(4);
  });
});
