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
  type TopicReset,
  type TopicStart,
} from '../../src/client/index.js';
import { topicKey } from '../../src/core/model.js';
import { waitFor } from './support/fake-gateway.js';
import { loadLegacyClient, plain } from './support/legacy-vm.js';
import { backendCases, uniqueName } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { ANY_CLIENT_ID } from './support/client-id.js';

const FAST = { minDelayMs: 5, maxDelayMs: 50 };

/** globalThis.fetch, recording how each poll was sent (method, and the POST body that names topics). */
function recordingPollBodies(polls: Array<{ method: string; body: unknown }>): FetchLike {
  return (input, init) => {
    if (new URL(input).pathname === '/v1/poll') polls.push({ method: init.method ?? 'GET', body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
    return fetch(input, init);
  };
}

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

  describe('topics', () => {
    /** A topic no other test (or run, on a shared database) has used. */
    const newTopic = () => uniqueName('room:');

    async function readTopics(user: string, topics: Record<string, TopicStart>, options: { cursorStore?: ReturnType<typeof memoryCursorStore>; grants?: Record<string, Array<'read' | 'publish'>> } = {}) {
      const received: PollMessage[] = [];
      const resets: TopicReset[] = [];
      const polls: Array<{ method: string; body: unknown }> = [];
      const grants = options.grants ?? Object.fromEntries(Object.keys(topics).map((topic) => [topic, ['read' as const]]));
      const poller = createLongPoller({
        url: gw.url,
        fetch: recordingPollBodies(polls),
        token: await gw.gateway.issueToken(user, { topics: grants }),
        wait: 4,
        backoff: FAST,
        topics,
        cursorStore: options.cursorStore,
        onMessages: (messages) => void received.push(...messages),
        onReset: (topic, earliest) => void resets.push({ topic, earliest }),
      });
      const stopped = poller.start();
      return { poller, stopped, received, resets, polls };
    }

    async function publishTo(topic: string, body: unknown, id?: string) {
      const token = await gw.gateway.issueToken('announcer', { topics: { [topic]: ['publish'] } });
      return publish({ url: gw.url, token, topic, body, id, backoff: FAST });
    }

    it('a reader from "now" gets what is published after its first poll, with `topic` and `seq`; a restart resumes from the checkpoint', async () => {
      const room = newTopic();
      await publishTo(room, 'before');
      const cursorStore = memoryCursorStore();
      const first = await readTopics(gw.nextUser(), { [room]: 'now' }, { cursorStore });
      await waitFor(() => first.polls.length === 1, 5000, 'the first poll');
      // Held by now: the publish wakes it (its position was fixed at the gateway's first look).
      await new Promise((resolve) => setTimeout(resolve, 200));
      const live = await publishTo(room, 'live', 'live-1');
      const again = await publishTo(room, 'live', 'live-1');
      expect(live).toMatchObject({ seq: 2, duplicate: false, clientId: 'live-1' });
      expect(again).toEqual({ id: live.id, seq: 2, duplicate: true, clientId: 'live-1' });
      await waitFor(() => first.received.length === 1, 5000, 'the live message');
      await first.poller.stop();
      expect(first.received[0]).toMatchObject({ id: live.id, from: 'announcer', body: 'live', topic: room, seq: 2 });
      expect(first.polls[0]).toEqual({ method: 'POST', body: { cursor: 0, wait: 4, limit: 100, client: ANY_CLIENT_ID, topics: { [room]: null } } });
      expect(cursorStore.load()).toMatchObject({ topics: { [room]: 2 } });

      await publishTo(room, 'while away');
      const second = await readTopics(gw.nextUser(), { [room]: 'now' }, { cursorStore });
      await waitFor(() => second.received.length === 1, 5000, 'the message sent while away');
      await new Promise((resolve) => setTimeout(resolve, 100));
      await second.poller.stop();
      expect(second.received.map((message) => [message.body, message.seq])).toEqual([['while away', 3]]);
      expect((second.polls[0]!.body as { topics: unknown }).topics).toEqual({ [room]: 2 });
    });

    it('mailbox and topic messages in one poller, many long topic names in one POST; subscribe() at run time', async () => {
      const user = gw.nextUser();
      const prefix = uniqueName('wide.');
      const names = Array.from({ length: 20 }, (_unused, index) => `${prefix}.${'x'.repeat(80)}.${index}`);
      const reader = await readTopics(user, Object.fromEntries(names.map((name) => [name, 0])), { grants: { [`${prefix}*`]: ['read'] } });
      await publishTo(names[7]!, 'wide');
      await send('alice', user, 'direct');
      await waitFor(() => reader.received.length === 2, 5000, 'both messages');
      expect(reader.received.map((message) => message.topic)).toContain(names[7]);
      expect(reader.received.find((message) => message.topic === undefined)).toMatchObject({ from: 'alice', body: 'direct' });

      const extra = `${prefix}.extra`;
      reader.poller.subscribe(extra, 0);
      await publishTo(extra, 'subscribed late');
      await waitFor(() => reader.received.length === 3, 5000, 'the message of the topic subscribed at run time');
      await reader.poller.stop();
      expect(reader.received[2]).toMatchObject({ body: 'subscribed late', topic: extra, seq: 1 });
      expect(reader.polls.every((poll) => poll.method === 'POST')).toBe(true);
    });

    it('a topic the token may not read stops the poller with forbidden_topic', async () => {
      const reader = await readTopics(gw.nextUser(), { [newTopic()]: 0 }, { grants: { other: ['read'] } });
      expect(await reader.stopped).toMatchObject({ type: 'stopped', reason: 'error', error: { status: 403, code: 'forbidden_topic', retryable: false } });
      expect(reader.polls).toHaveLength(1);
    });

    it('the legacy bundle reads and publishes topics too (text/plain POST, token in the query)', async () => {
      const room = newTopic();
      const { LongPoll, requests } = loadLegacyClient({ fetch: (input, init) => fetch(input, init) });
      const token = await gw.gateway.issueToken(gw.nextUser(), { topics: { [room]: ['read', 'publish'] } });
      const received: PollMessage[] = [];
      const poller = LongPoll.createLongPoller({
        url: gw.url,
        token,
        wait: 4,
        storageKey: false,
        topics: { [room]: 0 },
        onMessages: (messages: PollMessage[]) => void received.push(...plain(messages)),
      });
      poller.start();
      const published = await new Promise<{ id: number; seq?: number }>((resolve, reject) =>
        LongPoll.publish({ url: gw.url, token, topic: room, body: { text: 'from an old browser' } }, (error, result) => (error ? reject(new Error(error.code)) : resolve(plain(result) as { id: number; seq?: number }))),
      );
      await waitFor(() => received.length === 1, 5000, 'the topic message');
      poller.stop();
      expect(published.seq).toBe(1);
      expect(received[0]).toMatchObject({ id: published.id, topic: room, seq: 1, body: { text: 'from an old browser' } });
      const polls = requests.filter((request) => request.url.includes('/v1/poll'));
      expect(polls[0]).toMatchObject({ method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' } });
      expect(polls[0]!.url).toContain('access_token=');
      expect(JSON.parse(polls[0]!.body!)).toEqual({ cursor: 0, wait: 4, limit: 100, client: ANY_CLIENT_ID, topics: { [room]: 0 } });
    });

    it('a reader behind the trimmed history is told by onReset and reads on from the oldest message kept', async () => {
      const room = newTopic();
      // Stored directly (not through this gateway's engine, whose recent-message cache would
      // answer from before the trim), then trimmed to the last two, as the retention does.
      await gw.gateway.store.insertMessages(Array.from({ length: 5 }, (_unused, index) => ({ userId: topicKey(room), senderId: 'announcer', body: JSON.stringify(`m${index + 1}`) })));
      await gw.gateway.store.trimTopics(2, 0, 1000);
      const reader = await readTopics(gw.nextUser(), { [room]: 1 });
      await waitFor(() => reader.received.length === 2, 5000, 'the two messages kept');
      await reader.poller.stop();
      expect(reader.resets).toEqual([{ topic: room, earliest: 4 }]);
      expect(reader.received.map((message) => [message.body, message.seq])).toEqual([
        ['m4', 4],
        ['m5', 5],
      ]);
    });
  });
});
