import { afterAll, afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  createLongPoller,
  createShortPoller,
  memoryCursorStore,
  publish,
  publishBatch,
  type DeliveryReceipt,
  type FetchLike,
  type LongPollerOptions,
  type Poller,
  type PollerStatus,
  type PollerTransport,
  type PollMessage,
  type PresenceEvent,
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
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** globalThis.fetch, recording how each poll was sent (method, and the POST body that names topics). */
function recordingPollBodies(polls: Array<{ method: string; body: unknown }>): FetchLike {
  return (input, init) => {
    if (new URL(input).pathname === '/v1/poll') polls.push({ method: init.method ?? 'GET', body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined });
    return fetch(input, init);
  };
}

/** globalThis.fetch, recording the path of every request (`GET /v1/stream`, `POST /v1/ack`, …). */
function recordingFetch(requests: string[]): FetchLike {
  return (input, init) => {
    requests.push(`${init.method ?? 'GET'} ${new URL(input).pathname}`);
    return fetch(input, init);
  };
}

/**
 * The client's contract, on each transport of the long poller alone, against real gateways: what
 * the application sees (messages once and in order, receipts, resets, presence, the checkpoint, the
 * refusals that stop it) is the same whichever way the answers travel.
 */
describe.each(backendCases('client against the gateway'))('client against the real gateway on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5', PRESENCE_GRACE_S: '1' });

  describe.each<{ transport: PollerTransport }>([{ transport: 'websocket' }, { transport: 'sse' }, { transport: 'long-poll' }])('over $transport', ({ transport }) => {
    const running: Poller[] = [];
    afterEach(async () => {
      await Promise.all(running.splice(0).map((poller) => poller.stop()));
    });

    /** A long poller on this transport alone (the `ws` package's WebSocket: Node 20 has none). */
    function poller<Body = unknown>(options: Omit<LongPollerOptions<Body>, 'url'>): Poller {
      const created = createLongPoller<Body>({ url: gw.url, transports: [transport], WebSocket, wait: 4, backoff: FAST, ...options });
      running.push(created);
      return created;
    }

    /**
     * Resolves once the poller is connected: a stream has opened, or a poll was sent (a poll says
     * `connected` only with its first answer, which an empty mailbox gives after `wait`).
     */
    function connection(statuses: PollerStatus[], requests: string[]): Promise<void> {
      const sent = () => requests.some((request) => request.endsWith(' /v1/poll'));
      return waitFor(() => statuses.some((status) => status.type === 'connected' || status.type === 'stopped') || (transport === 'long-poll' && sent()), 5000, 'the connection');
    }

    async function collect(user: string, options: { cursorStore?: ReturnType<typeof memoryCursorStore>; onReceipts?: (receipts: DeliveryReceipt[]) => void } = {}) {
      const received: PollMessage[] = [];
      const statuses: PollerStatus[] = [];
      const requests: string[] = [];
      const collector = poller({
        token: await gw.token(user),
        fetch: recordingFetch(requests),
        cursorStore: options.cursorStore,
        onMessages: (messages) => void received.push(...messages),
        onReceipts: options.onReceipts,
        onStatus: (status) => void statuses.push(status),
      });
      void collector.start();
      await connection(statuses, requests);
      return { poller: collector, received, statuses, requests };
    }

    async function send(from: string, to: string, body: unknown, id?: string) {
      return publish({ url: gw.url, token: await gw.token(from), to, body, id, backoff: FAST });
    }

    async function pending(user: string): Promise<number> {
      const response = await gw.request('/v1/mailbox', { token: await gw.token(user) });
      return ((await response.json()) as { pending: number }).pending;
    }

    it('delivers messages as they are published, in order, and reports the transport in use', async () => {
      const [alice, bob] = [gw.nextUser(), gw.nextUser()];
      const reader = await collect(bob);
      // Let the connection be held before publishing, so this exercises the wake-up path.
      await pause(200);
      const sentAt = Date.now();
      const first = await send(alice, bob, { text: 'one' }, 'a-1');
      await send(alice, bob, { text: 'two' }, 'a-2');
      await send(alice, bob, { text: 'three' }, 'a-3');
      await waitFor(() => reader.received.length >= 3, 5000, 'three messages');
      expect(Date.now() - sentAt).toBeLessThan(3000);
      expect(first.duplicate).toBe(false);
      expect(reader.received.map((message) => [message.from, message.body])).toEqual([
        [alice, { text: 'one' }],
        [alice, { text: 'two' }],
        [alice, { text: 'three' }],
      ]);
      const ids = reader.received.map((message) => message.id);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(reader.statuses[0]).toMatchObject({ type: 'connected', transport });
      const paths = new Set(reader.requests.filter((request) => !request.endsWith('/v1/ack')));
      // Streams never poll (the WebSocket's requests are no fetches); polls are all there is otherwise.
      expect([...paths]).toEqual({ websocket: [], sse: ['GET /v1/stream'], 'long-poll': ['GET /v1/poll'] }[transport]);
    });

    it('acks what the application took: the gateway holds nothing pending once it is handed over', async () => {
      const [alice, bob] = [gw.nextUser(), gw.nextUser()];
      const reader = await collect(bob);
      for (let index = 1; index <= 5; index++) await send(alice, bob, index);
      await waitFor(() => reader.received.length === 5, 5000, 'five messages');
      // Polls ack with the next poll's cursor; streams with an ack of their own.
      const acked = Date.now();
      while ((await pending(bob)) > 0 && Date.now() - acked < 5000) await pause(20);
      expect(await pending(bob)).toBe(0);
      if (transport === 'sse') expect(reader.requests.filter((request) => request === 'POST /v1/ack').length).toBeLessThanOrEqual(5);
    });

    it('publish is idempotent per client id; the recipient sees the message once', async () => {
      const [alice, carol] = [gw.nextUser(), gw.nextUser()];
      const reader = await collect(carol);
      const first = await send(alice, carol, 'hello', 'same-id');
      const again = await send(alice, carol, 'hello', 'same-id');
      expect(again).toEqual({ id: first.id, duplicate: true, clientId: 'same-id' });
      await send(alice, carol, 'after', 'other-id');
      await waitFor(() => reader.received.length >= 2, 5000, 'two messages');
      await pause(100);
      expect(reader.received.map((message) => message.body)).toEqual(['hello', 'after']);
    });

    it('a restarted poller resumes from its cursor store: nothing lost, nothing repeated', async () => {
      const [alice, dave] = [gw.nextUser(), gw.nextUser()];
      const cursorStore = memoryCursorStore();
      const first = await collect(dave, { cursorStore });
      await send(alice, dave, 1);
      await send(alice, dave, 2);
      await waitFor(() => first.received.length === 2, 5000, 'first two');
      await first.poller.stop();
      await send(alice, dave, 3);
      await send(alice, dave, 4);

      const second = await collect(dave, { cursorStore });
      await waitFor(() => second.received.length === 2, 5000, 'the two sent while stopped');
      await pause(100);
      expect(first.received.map((message) => message.body)).toEqual([1, 2]);
      expect(second.received.map((message) => message.body)).toEqual([3, 4]);
      expect(second.poller.cursor).toBeGreaterThanOrEqual(first.poller.cursor!);
    });

    it('stops with the server code on a bad token', async () => {
      const bad = poller({ token: 'not-a-jwt', onMessages: () => {} });
      expect(await bad.start()).toMatchObject({ type: 'stopped', reason: 'error', error: { status: 401, code: 'invalid_token', retryable: false } });
    });

    it('delivery receipts: the sender hears once per message it asked about, after the recipient acked it', async () => {
      const [erin, frank] = [gw.nextUser(), gw.nextUser()];
      const receipts: DeliveryReceipt[] = [];
      const erinToken = await gw.token(erin);
      const sender = await collect(erin, { onReceipts: (batch) => void receipts.push(...batch) });
      const single = await publish({ url: gw.url, token: erinToken, to: frank, body: 'read me', receipt: true, backoff: FAST });
      const [batched, silent] = await publishBatch({
        url: gw.url,
        token: erinToken,
        backoff: FAST,
        messages: [
          { to: frank, body: 'me too', receipt: true },
          { to: frank, body: 'no receipt for me' },
        ],
      });
      // No receipt before frank acks.
      await pause(300);
      expect(receipts).toEqual([]);

      const recipient = await collect(frank);
      await waitFor(() => recipient.received.length === 3, 5000, "frank's three messages");
      await waitFor(() => receipts.length >= 2, 10_000, 'two receipts');
      await pause(300);
      expect(receipts.map((receipt) => receipt.id).sort((a, b) => a - b)).toEqual([single.id, batched!.id].sort((a, b) => a - b));
      expect(receipts.map((receipt) => receipt.id)).not.toContain(silent!.id);
      for (const receipt of receipts) {
        expect(receipt).toMatchObject({ to: frank, status: 'acked' });
        expect(Number.isNaN(Date.parse(receipt.at))).toBe(false);
      }
      expect(sender.received).toEqual([]);
    });

    describe('topics', () => {
      /** A topic no other test (or run, on a shared database) has used. */
      const newTopic = () => uniqueName('room:');

      async function readTopics(
        user: string,
        topics: Record<string, TopicStart>,
        options: { cursorStore?: ReturnType<typeof memoryCursorStore>; grants?: Record<string, Array<'read' | 'publish' | 'presence'>>; onPresence?: (events: PresenceEvent[]) => void } = {},
      ) {
        const received: PollMessage[] = [];
        const resets: TopicReset[] = [];
        const statuses: PollerStatus[] = [];
        const requests: string[] = [];
        const grants = options.grants ?? Object.fromEntries(Object.keys(topics).map((topic) => [topic, ['read' as const]]));
        const reader = poller({
          token: await gw.gateway.issueToken(user, { topics: grants }),
          fetch: recordingFetch(requests),
          topics,
          cursorStore: options.cursorStore,
          onMessages: (messages) => void received.push(...messages),
          onReset: (topic, earliest) => void resets.push({ topic, earliest }),
          onPresence: options.onPresence,
          onStatus: (status) => void statuses.push(status),
        });
        const stopped = reader.start();
        return { poller: reader, stopped, received, resets, statuses, connected: () => connection(statuses, requests) };
      }

      async function publishTo(topic: string, body: unknown, id?: string) {
        const token = await gw.gateway.issueToken('announcer', { topics: { [topic]: ['publish'] } });
        return publish({ url: gw.url, token, topic, body, id, backoff: FAST });
      }

      it('a reader from "now" gets what is published after it connected, with `topic` and `seq`; a restart resumes from the checkpoint', async () => {
        const room = newTopic();
        await publishTo(room, 'before');
        const cursorStore = memoryCursorStore();
        const first = await readTopics(gw.nextUser(), { [room]: 'now' }, { cursorStore });
        await first.connected();
        // Held by now: the publish wakes it (its position was fixed at the gateway's first look).
        await pause(200);
        const clientId = uniqueName('live-');
        const live = await publishTo(room, 'live', clientId);
        const again = await publishTo(room, 'live', clientId);
        expect(live).toMatchObject({ seq: 2, duplicate: false, clientId });
        expect(again).toEqual({ id: live.id, seq: 2, duplicate: true, clientId });
        await waitFor(() => first.received.length === 1, 5000, 'the live message');
        await first.poller.stop();
        expect(first.received[0]).toMatchObject({ id: live.id, from: 'announcer', body: 'live', topic: room, seq: 2 });
        expect(cursorStore.load()).toMatchObject({ topics: { [room]: 2 } });

        await publishTo(room, 'while away');
        const second = await readTopics(gw.nextUser(), { [room]: 'now' }, { cursorStore });
        await waitFor(() => second.received.length === 1, 5000, 'the message sent while away');
        await pause(100);
        expect(second.received.map((message) => [message.body, message.seq])).toEqual([['while away', 3]]);
      });

      it('mailbox and topic messages in one poller; subscribe() and unsubscribe() at run time', async () => {
        const user = gw.nextUser();
        const prefix = uniqueName('wide.');
        const names = Array.from({ length: 5 }, (_unused, index) => `${prefix}.${index}`);
        const reader = await readTopics(user, Object.fromEntries(names.map((name) => [name, 0])), { grants: { [`${prefix}*`]: ['read'] } });
        await reader.connected();
        await publishTo(names[3]!, 'wide');
        await send('alice', user, 'direct');
        await waitFor(() => reader.received.length === 2, 5000, 'both messages');
        expect(reader.received.map((message) => message.topic)).toContain(names[3]);
        expect(reader.received.find((message) => message.topic === undefined)).toMatchObject({ from: 'alice', body: 'direct' });

        const extra = `${prefix}.extra`;
        reader.poller.subscribe(extra, 0);
        reader.poller.unsubscribe(names[3]!);
        await publishTo(extra, 'subscribed late');
        await publishTo(names[3]!, 'no longer read');
        await waitFor(() => reader.received.length === 3, 5000, 'the message of the topic subscribed at run time');
        await pause(200);
        expect(reader.received.slice(2)).toEqual([expect.objectContaining({ body: 'subscribed late', topic: extra, seq: 1 })]);
      });

      it('a topic the token may not read stops the poller with forbidden_topic', async () => {
        const reader = await readTopics(gw.nextUser(), { [newTopic()]: 0 }, { grants: { other: ['read'] } });
        expect(await reader.stopped).toMatchObject({ type: 'stopped', reason: 'error', error: { status: 403, code: 'forbidden_topic', retryable: false } });
      });

      it('a reader behind the trimmed history is told by onReset and reads on from the oldest message kept', async () => {
        const room = newTopic();
        // Stored directly (not through this gateway's engine, whose recent-message cache would
        // answer from before the trim), then trimmed to the last two, as the retention does.
        await gw.gateway.store.insertMessages(Array.from({ length: 5 }, (_unused, index) => ({ userId: topicKey(room), senderId: 'announcer', body: JSON.stringify(`m${index + 1}`) })));
        await gw.gateway.store.trimTopics(2, 0, 1000);
        const reader = await readTopics(gw.nextUser(), { [room]: 1 });
        await waitFor(() => reader.received.length === 2, 5000, 'the two messages kept');
        expect(reader.resets).toEqual([{ topic: room, earliest: 4 }]);
        expect(reader.received.map((message) => [message.body, message.seq])).toEqual([
          ['m4', 4],
          ['m5', 5],
        ]);
      });

      it('hands the joins of the topics it reads to onPresence', async () => {
        const room = newTopic();
        const [watcher, visitor] = [gw.nextUser(), gw.nextUser()];
        const events: PresenceEvent[] = [];
        const reader = await readTopics(watcher, { [room]: 'now' }, { grants: { [room]: ['read', 'presence'] }, onPresence: (batch) => void events.push(...batch) });
        await reader.connected();
        await pause(200);
        const visitorToken = await gw.gateway.issueToken(visitor, { topics: { [room]: ['read'] } });
        await gw.request(`/v1/poll?wait=0&client=visitor-tab&topic=${room}`, { token: visitorToken });
        await waitFor(() => events.some((event) => event.user === visitor && event.event === 'join'), 5000, "the visitor's join");
        expect(events.find((event) => event.user === visitor)).toMatchObject({ topic: room, user: visitor, event: 'join', at: expect.any(String) });
      });
    });
  });

  describe('long polls', () => {
    let poller: Poller | undefined;
    afterAll(async () => poller?.stop());

    it('short poller delivers with wait=0', async () => {
      const [carol, bob] = [gw.nextUser(), gw.nextUser()];
      const received: PollMessage[] = [];
      const short = createShortPoller({ url: gw.url, token: await gw.token(bob), intervalMs: 20, backoff: FAST, onMessages: (m) => void received.push(...m) });
      void short.start();
      await publish({ url: gw.url, token: await gw.token(carol), to: bob, body: 'short', backoff: FAST });
      await waitFor(() => received.length === 1, 5000, 'short-polled message');
      await short.stop();
      expect(received[0]).toMatchObject({ from: carol, body: 'short' });
    });

    it('clamps `wait` to the server maximum', async () => {
      const [bob, alice] = [gw.nextUser(), gw.nextUser()];
      await publish({ url: gw.url, token: await gw.token(bob), to: alice, body: 'waiting for you', backoff: FAST });
      const statuses: PollerStatus[] = [];
      const polls: URLSearchParams[] = [];
      const tooLong = createLongPoller({
        url: gw.url,
        token: await gw.token(alice),
        transports: ['long-poll'],
        wait: 60,
        fetch: (input, init) => {
          if (new URL(input).pathname === '/v1/poll') polls.push(new URL(input).searchParams);
          return fetch(input, init);
        },
        onMessages: () => {},
        onStatus: (status) => void statuses.push(status),
      });
      poller = tooLong;
      void tooLong.start();
      await waitFor(() => statuses.some((status) => status.type === 'messages' || status.type === 'stopped'), 5000, 'first answer');
      await tooLong.stop();
      expect(statuses[0]).toMatchObject({ type: 'connected', transport: 'long-poll' });
      // The server allows 5 s. It says so in X-Poll-Wait-Max on success; on invalid_wait the client halves.
      const waits = polls.map((query) => Number(query.get('wait')));
      expect(waits[0]).toBe(60);
      expect(waits.at(-1)).toBeLessThanOrEqual(5);
    });

    it('reads topics with POST /v1/poll, many long topic names in one body', async () => {
      const user = gw.nextUser();
      const prefix = uniqueName('wide.');
      const names = Array.from({ length: 20 }, (_unused, index) => `${prefix}.${'x'.repeat(80)}.${index}`);
      const polls: Array<{ method: string; body: unknown }> = [];
      const received: PollMessage[] = [];
      const reader = createLongPoller({
        url: gw.url,
        transports: ['long-poll'],
        fetch: recordingPollBodies(polls),
        token: await gw.gateway.issueToken(user, { topics: { [`${prefix}*`]: ['read'] } }),
        wait: 4,
        backoff: FAST,
        topics: Object.fromEntries(names.map((name) => [name, 0])),
        onMessages: (messages) => void received.push(...messages),
      });
      poller = reader;
      void reader.start();
      const announcer = await gw.gateway.issueToken('announcer', { topics: { [names[7]!]: ['publish'] } });
      await publish({ url: gw.url, token: announcer, topic: names[7]!, body: 'wide', backoff: FAST });
      await waitFor(() => received.length === 1, 5000, 'the topic message');
      await reader.stop();
      expect(polls.every((poll) => poll.method === 'POST')).toBe(true);
      expect(polls[0]!.body).toEqual({ cursor: 0, wait: 4, limit: 100, client: ANY_CLIENT_ID, topics: Object.fromEntries(names.map((name) => [name, 0])) });
    });

    it('the legacy bundle reads and publishes topics too (text/plain POST, token in the query)', async () => {
      const room = uniqueName('room:');
      const { LongPoll, requests } = loadLegacyClient({ fetch: (input, init) => fetch(input, init) });
      const token = await gw.gateway.issueToken(gw.nextUser(), { topics: { [room]: ['read', 'publish'] } });
      const received: PollMessage[] = [];
      const legacyPoller = LongPoll.createLongPoller({
        url: gw.url,
        token,
        wait: 4,
        storageKey: false,
        topics: { [room]: 0 },
        onMessages: (messages: PollMessage[]) => void received.push(...plain(messages)),
      });
      legacyPoller.start();
      const published = await new Promise<{ id: number; seq?: number }>((resolve, reject) =>
        LongPoll.publish({ url: gw.url, token, topic: room, body: { text: 'from an old browser' } }, (error, result) => (error ? reject(new Error(error.code)) : resolve(plain(result) as { id: number; seq?: number }))),
      );
      await waitFor(() => received.length === 1, 5000, 'the topic message');
      legacyPoller.stop();
      expect(published.seq).toBe(1);
      expect(received[0]).toMatchObject({ id: published.id, topic: room, seq: 1, body: { text: 'from an old browser' } });
      const polls = requests.filter((request) => request.url.includes('/v1/poll'));
      expect(polls[0]).toMatchObject({ method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' } });
      expect(polls[0]!.url).toContain('access_token=');
      expect(JSON.parse(polls[0]!.body!)).toEqual({ cursor: 0, wait: 4, limit: 100, client: ANY_CLIENT_ID, topics: { [room]: 0 } });
    });
  });
});
