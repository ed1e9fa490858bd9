import { afterAll, describe, expect, it } from 'vitest';
import {
  createLongPoller,
  createShortPoller,
  memoryCursorStore,
  publish,
  publishBatch,
  type DeliveryReceipt,
  type FetchLike,
  type Poller,
  type PollerStatus,
  type PollMessage,
} from '../../src/client/index.js';
import { waitFor } from './support/fake-gateway.js';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';

const FAST = { minDelayMs: 5, maxDelayMs: 50 };

/** globalThis.fetch, recording each poll's query so tests can tell when a poll is in flight. */
function recordingFetch(polls: URLSearchParams[]): FetchLike {
  return (input, init) => {
    const url = new URL(input);
    if (url.pathname === '/v1/poll') polls.push(url.searchParams);
    return fetch(input, init);
  };
}

describe.each(backendCases('client against the gateway'))('client against the real gateway on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5' });

  async function collect(user: string, options: { cursorStore?: ReturnType<typeof memoryCursorStore>; wait?: number; statuses?: PollerStatus[] } = {}) {
    const received: PollMessage[] = [];
    const polls: URLSearchParams[] = [];
    const poller = createLongPoller({
      url: gw.url,
      fetch: recordingFetch(polls),
      token: await gw.token(user),
      wait: options.wait ?? 4,
      backoff: FAST,
      cursorStore: options.cursorStore,
      onMessages: (messages) => void received.push(...messages),
      onStatus: (status) => void options.statuses?.push(status),
    });
    void poller.start();
    return { poller, received, polls };
  }

  async function send(from: string, to: string, body: unknown, id?: string) {
    return publish({ url: gw.url, token: await gw.token(from), to, body, id, backoff: FAST });
  }

  let poller: Poller | undefined;
  afterAll(async () => poller?.stop());

  it('long poll: a held poll is answered as soon as a message is published', async () => {
    const bob = await collect('bob');
    poller = bob.poller;
    await waitFor(() => bob.polls.length === 1, 5000, 'the first poll');
    // Let the poll be held before publishing, so this exercises the wake-up path.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const sentAt = Date.now();
    const first = await send('alice', 'bob', { text: 'one' }, 'a-1');
    await send('alice', 'bob', { text: 'two' }, 'a-2');
    await send('alice', 'bob', { text: 'three' }, 'a-3');
    await waitFor(() => bob.received.length >= 3, 5000, 'three messages');
    expect(Date.now() - sentAt).toBeLessThan(3000);
    expect(first.duplicate).toBe(false);
    expect(bob.received.map((message) => [message.from, message.body])).toEqual([
      ['alice', { text: 'one' }],
      ['alice', { text: 'two' }],
      ['alice', { text: 'three' }],
    ]);
    const ids = bob.received.map((message) => message.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    await bob.poller.stop();
  });

  it('publish is idempotent per client id; the recipient sees the message once', async () => {
    const carol = await collect('carol');
    const first = await send('alice', 'carol', 'hello', 'same-id');
    const again = await send('alice', 'carol', 'hello', 'same-id');
    expect(again).toEqual({ id: first.id, duplicate: true, clientId: 'same-id' });
    await send('alice', 'carol', 'after', 'other-id');
    await waitFor(() => carol.received.length >= 2, 5000, 'two messages');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(carol.received.map((message) => message.body)).toEqual(['hello', 'after']);
    await carol.poller.stop();
  });

  it('a restarted poller resumes from its cursor store: nothing lost, nothing repeated', async () => {
    const cursorStore = memoryCursorStore();
    const first = await collect('dave', { cursorStore });
    await send('alice', 'dave', 1);
    await send('alice', 'dave', 2);
    await waitFor(() => first.received.length === 2, 5000, 'first two');
    await first.poller.stop();
    await send('alice', 'dave', 3);
    await send('alice', 'dave', 4);

    const second = await collect('dave', { cursorStore });
    await waitFor(() => second.received.length === 2, 5000, 'the two sent while stopped');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await second.poller.stop();
    expect(first.received.map((message) => message.body)).toEqual([1, 2]);
    expect(second.received.map((message) => message.body)).toEqual([3, 4]);
    expect(second.poller.cursor).toBeGreaterThanOrEqual(first.poller.cursor!);
  });

  it('short poller delivers with wait=0', async () => {
    const received: PollMessage[] = [];
    const short = createShortPoller({ url: gw.url, token: await gw.token('bob'), intervalMs: 20, backoff: FAST, onMessages: (m) => void received.push(...m) });
    void short.start();
    await send('carol', 'bob', 'short');
    await waitFor(() => received.length === 1, 5000, 'short-polled message');
    await short.stop();
    expect(received[0]).toMatchObject({ from: 'carol', body: 'short' });
  });

  it('stops with the server code on a bad token and clamps `wait` to the server maximum', async () => {
    const bad = createLongPoller({ url: gw.url, token: 'not-a-jwt', onMessages: () => {} });
    expect(await bad.start()).toMatchObject({ type: 'stopped', reason: 'error', error: { status: 401, code: 'invalid_token' } });

    await send('bob', 'alice', 'waiting for you');
    const statuses: PollerStatus[] = [];
    const polls: URLSearchParams[] = [];
    const tooLong = createLongPoller({
      url: gw.url,
      token: await gw.token('alice'),
      wait: 60,
      fetch: recordingFetch(polls),
      onMessages: () => {},
      onStatus: (status) => void statuses.push(status),
    });
    void tooLong.start();
    await waitFor(() => statuses.some((status) => status.type === 'messages' || status.type === 'stopped'), 5000, 'first answer');
    await tooLong.stop();
    expect(statuses[0]).toMatchObject({ type: 'connected' });
    // The server allows 5 s. It says so in X-Poll-Wait-Max on success; on invalid_wait the client halves.
    const waits = polls.map((query) => Number(query.get('wait')));
    expect(waits[0]).toBe(60);
    expect(waits.at(-1)).toBeLessThanOrEqual(5);
  });

  it('delivery receipts: the sender hears once per message it asked about, after the recipient acked it', async () => {
    const receipts: DeliveryReceipt[] = [];
    const erinMessages: PollMessage[] = [];
    const erinToken = await gw.token('erin');
    const erin = createLongPoller({
      url: gw.url,
      token: erinToken,
      wait: 4,
      backoff: FAST,
      onMessages: (messages) => void erinMessages.push(...messages),
      onReceipts: (batch) => void receipts.push(...batch),
    });
    void erin.start();
    const single = await publish({ url: gw.url, token: erinToken, to: 'frank', body: 'read me', receipt: true, backoff: FAST });
    const [batched, silent] = await publishBatch({
      url: gw.url,
      token: erinToken,
      backoff: FAST,
      messages: [
        { to: 'frank', body: 'me too', receipt: true },
        { to: 'frank', body: 'no receipt for me' },
      ],
    });
    // No receipt before frank acks.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(receipts).toEqual([]);

    const frank = await collect('frank');
    await waitFor(() => frank.received.length === 3, 5000, "frank's three messages");
    await waitFor(() => receipts.length >= 2, 10_000, 'two receipts');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await frank.poller.stop();
    await erin.stop();
    expect(receipts.map((receipt) => receipt.id).sort((a, b) => a - b)).toEqual([single.id, batched!.id].sort((a, b) => a - b));
    expect(receipts.map((receipt) => receipt.id)).not.toContain(silent!.id);
    for (const receipt of receipts) {
      expect(receipt).toMatchObject({ to: 'frank', status: 'acked' });
      expect(Number.isNaN(Date.parse(receipt.at))).toBe(false);
    }
    expect(erinMessages).toEqual([]);
  });
});
