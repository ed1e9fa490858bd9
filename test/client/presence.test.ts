import { afterEach, describe, expect, it } from 'vitest';
import type { FetchLike, PollCheckpoint, PresenceEvent } from '../../src/client/index.js';
import { MADE_UP_CLIENT_ID } from './support/client-id.js';
import { waitFor } from './support/fake-gateway.js';
import { startPresenceGateway, type PresenceGateway, type PresenceRequest } from './support/presence-gateway.js';
import { SHELLS, type PollerUnderTest } from './support/shells.js';

/**
 * Presence on both builds, against a node:http stand-in for the gateway's presence API: the
 * `client` id every poll carries (and keeps across a restart, through the checkpoint),
 * `presence: true` for pollers with onPresence, the events handed to onPresence, and the
 * presence() / topicPresence() look-ups with their refusals.
 */
const realFetch: { fetch: FetchLike } = { fetch: (input, init) => fetch(input, init) };
const FAST = { minDelayMs: 1, maxDelayMs: 4, factor: 2, jitter: 0.5 };
const message = (id: number) => ({ id, from: 'bob', body: `m${id}`, createdAt: '2026-12-01T10:00:00.000Z' });
const join = (user: string, at = '2026-12-01T10:00:00.000Z'): PresenceEvent => ({ topic: 'room:1', user, event: 'join', at });
const leave = (user: string, at = '2026-12-01T10:05:00.000Z'): PresenceEvent => ({ topic: 'room:1', user, event: 'leave', at });
const refusal = (status: number, code: string) => ({ status, body: { error: { code, message: `scripted ${code}` } } });

const gateways: PresenceGateway[] = [];
const pollers: PollerUnderTest[] = [];
afterEach(async () => {
  await Promise.all(pollers.splice(0).map((poller) => poller.stop()));
  await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
});

async function startGateway(options?: Parameters<typeof startPresenceGateway>[0]): Promise<PresenceGateway> {
  const gateway = await startPresenceGateway(options);
  gateways.push(gateway);
  return gateway;
}

function tracked(poller: PollerUnderTest): PollerUnderTest {
  pollers.push(poller);
  return poller;
}

const pollsBy = (gateway: PresenceGateway, token: string) => gateway.polls().filter((request) => request.token === token);

describe.each(SHELLS)('presence: $name', (shell) => {
  it('sends one made-up client id with every poll, GET or POST, saves it after the first poll, and resumes under it', async () => {
    const gateway = await startGateway();
    const storage = new Map<string, string>();
    const page = shell.load(realFetch, storage, gateway.url);
    const first = tracked(page.createPoller({ token: 't', cursorStore: page.storageCursorStore('inbox') }));
    first.start();
    await waitFor(() => gateway.polls().length >= 2, 2000, 'two polls');
    const id = first.clientId!;
    expect(id).toMatch(MADE_UP_CLIENT_ID);
    // Nothing arrived, yet the new id is in the checkpoint: a restart now resumes under it.
    expect(JSON.parse(storage.get('inbox')!)).toEqual({ cursor: 0, clientId: id, seen: { ids: [] } });
    first.subscribe('room:1', 0);
    await waitFor(() => gateway.polls().filter((request) => request.method === 'POST').length >= 2, 2000, 'two polls with the topic');
    await first.stop();
    expect(new Set(gateway.polls().map((request) => request.method))).toEqual(new Set(['GET', 'POST']));
    expect(gateway.polls().map((request) => gateway.pollParams(request).client)).toEqual(gateway.polls().map(() => id));

    const pollsBefore = gateway.polls().length;
    const reloaded = shell.load(realFetch, storage, gateway.url);
    const second = tracked(reloaded.createPoller({ token: 't', cursorStore: reloaded.storageCursorStore('inbox') }));
    second.start();
    await waitFor(() => gateway.polls().length > pollsBefore, 2000, 'the poll after the reload');
    await second.stop();
    expect(gateway.pollParams(gateway.polls()[pollsBefore]!).client).toBe(id);
    expect(second.clientId).toBe(id);

    // Another poller, with a checkpoint of its own, is another client.
    const other = tracked(page.createPoller({ token: 'other' }));
    other.start();
    await waitFor(() => pollsBy(gateway, 'other').length >= 1, 2000, 'the other poller');
    await other.stop();
    expect(gateway.pollParams(pollsBy(gateway, 'other')[0]!).client).toBe(other.clientId);
    expect(other.clientId).toMatch(MADE_UP_CLIENT_ID);
    expect(other.clientId).not.toBe(id);
  });

  it('loads a checkpoint from before presence, makes up an id and saves it; refuses a stored id that is not one', async () => {
    const gateway = await startGateway();
    const storage = new Map([['inbox', JSON.stringify({ cursor: 3, seen: { ids: [1, 2, 3] } })]]);
    const page = shell.load(realFetch, storage, gateway.url);
    const poller = tracked(page.createPoller({ token: 't', cursorStore: page.storageCursorStore('inbox') }));
    poller.start();
    await waitFor(() => gateway.polls().length >= 2, 2000, 'two polls');
    await poller.stop();
    const [firstPoll] = gateway.polls();
    expect(gateway.pollParams(firstPoll!)).toMatchObject({ cursor: '3', client: poller.clientId });
    expect(poller.clientId).toMatch(MADE_UP_CLIENT_ID);
    expect(JSON.parse(storage.get('inbox')!)).toEqual({ cursor: 3, clientId: poller.clientId, seen: { ids: [1, 2, 3] } });

    for (const clientId of ['has spaces', '', 'x'.repeat(65), 42]) {
      const broken = tracked(page.createPoller({ token: 't', cursorStore: { load: () => ({ cursor: 0, clientId, seen: { ids: [] } }), save: () => {} } }));
      broken.start();
      await waitFor(() => broken.statuses.some((status) => status.type === 'stopped'), 2000, 'the stop');
      const stopped = broken.statuses.find((status) => status.type === 'stopped');
      expect(stopped).toMatchObject({ reason: 'error', error: { code: 'cursor_store_failed', retryable: false } });
      expect(stopped!.error!.message).toContain('Expected `clientId` to be a client id matching');
    }
    expect(gateway.polls()).toHaveLength(2);
  });

  it('asks for presence only when given onPresence, and only in polls that read topics', async () => {
    const gateway = await startGateway();
    const client = shell.load(realFetch, undefined, gateway.url);
    const cases = [
      { token: 'topics-and-presence', topics: { 'room:1': 0 }, onPresence: () => {} },
      { token: 'topics-only', topics: { 'room:1': 0 } },
      { token: 'presence-only', onPresence: () => {} },
    ];
    for (const options of cases) {
      const poller = tracked(client.createPoller(options));
      poller.start();
      await waitFor(() => pollsBy(gateway, options.token).length >= 2, 2000, `two polls of ${options.token}`);
      await poller.stop();
    }
    const first = (token: string): PresenceRequest => pollsBy(gateway, token)[0]!;
    expect(first('topics-and-presence').method).toBe('POST');
    expect(first('topics-and-presence').body).toEqual({ cursor: 0, wait: 25, limit: 100, client: expect.stringMatching(MADE_UP_CLIENT_ID), topics: { 'room:1': 0 }, presence: true });
    expect(first('topics-only').body).toEqual({ cursor: 0, wait: 25, limit: 100, client: expect.stringMatching(MADE_UP_CLIENT_ID), topics: { 'room:1': 0 } });
    // Presence is of topics: a poll that reads none asks for none.
    expect(first('presence-only').method).toBe('GET');
    expect(first('presence-only').url.searchParams.has('presence')).toBe(false);
    expect(first('presence-only').url.searchParams.get('client')).toMatch(MADE_UP_CLIENT_ID);
  });

  it('hands the events to onPresence as the answer gives them, after onMessages; an answer with only events moves nothing', async () => {
    const gateway = await startGateway();
    gateway.deliver(message(1));
    gateway.announce(join('alice'), leave('bob'));
    const order: string[] = [];
    const saves: PollCheckpoint[] = [];
    const client = shell.load(realFetch, undefined, gateway.url);
    const poller = tracked(
      client.createPoller({
        token: 't',
        topics: { 'room:1': 0 },
        cursorStore: { load: () => undefined, save: (checkpoint) => void saves.push(JSON.parse(JSON.stringify(checkpoint))) },
        onMessages: (messages) => void order.push(`messages ${messages.map((received) => received.id).join()}`),
        onPresence: (events) => void order.push(`presence ${events.map((event) => `${event.event} ${event.user}`).join()}`),
      }),
    );
    poller.start();
    await waitFor(() => poller.presence.length === 1, 2000, 'the first events');
    gateway.announce(join('carol', '2026-12-01T10:06:00.000Z'));
    await waitFor(() => poller.presence.length === 2, 2000, 'the events without messages');
    const pollsBefore = gateway.polls().length;
    await waitFor(() => gateway.polls().length > pollsBefore, 2000, 'the poll after them');
    await poller.stop();
    expect(poller.presence).toEqual([[join('alice'), leave('bob')], [join('carol', '2026-12-01T10:06:00.000Z')]]);
    expect(order).toEqual(['messages 1', 'presence join alice,leave bob', 'presence join carol']);
    expect(poller.cursor).toBe(1);
    // The first answer was saved (a message, a new client id); the one with events alone changed nothing.
    expect(saves).toEqual([{ cursor: 1, clientId: poller.clientId, seen: { ids: [1] }, topics: { 'room:1': 0 } }]);
    expect(gateway.pollParams(gateway.polls()[pollsBefore]!)).toMatchObject({ cursor: 1, topics: { 'room:1': 0 }, presence: true });
  });

  it('retries a throwing onPresence like onMessages, without handing the messages over twice', async () => {
    const gateway = await startGateway();
    gateway.scriptPolls(
      { body: { messages: [message(1)], cursor: 1, positions: { 'room:1': 0 }, presence: [join('alice')] } },
      // Unacknowledged, so sent again: the client drops it as a repeat.
      { body: { messages: [message(1)], cursor: 1, positions: { 'room:1': 0 } } },
    );
    let calls = 0;
    const client = shell.load(realFetch, undefined, gateway.url);
    const poller = tracked(
      client.createPoller({
        token: 't',
        backoff: FAST,
        topics: { 'room:1': 0 },
        onPresence: () => {
          calls += 1;
          if (calls === 1) throw new Error('roster failed');
        },
      }),
    );
    poller.start();
    await waitFor(() => gateway.polls().length >= 3, 2000, 'the polls after the throw');
    await poller.stop();
    const retry = poller.statuses.find((status) => status.type === 'retrying');
    expect(retry).toMatchObject({ attempt: 1, error: { code: 'callback_failed', retryable: true } });
    expect(retry!.error!.message).toMatch(/^onPresence threw: .*roster failed/);
    expect(poller.received.map((received) => received.id)).toEqual([1]);
    expect(gateway.pollParams(gateway.polls()[1]!).cursor).toBe(0);
  });

  it('retries an answer whose presence events are not what the API promises (invalid_response), handing nothing over from it', async () => {
    const gateway = await startGateway();
    gateway.scriptPolls({ body: { messages: [message(1)], cursor: 1, positions: { 'room:1': 0 }, presence: [{ topic: 'room:1', user: 'alice', event: 'arrived', at: 'now' }] } });
    gateway.deliver(message(1));
    const client = shell.load(realFetch, undefined, gateway.url);
    const poller = tracked(client.createPoller({ token: 't', backoff: FAST, topics: { 'room:1': 0 }, onPresence: () => {} }));
    poller.start();
    await waitFor(() => poller.received.length === 1, 2000, 'the message from the valid answer');
    await poller.stop();
    const retry = poller.statuses.find((status) => status.type === 'retrying');
    expect(retry).toMatchObject({ attempt: 1, error: { code: 'invalid_response', retryable: true } });
    expect(retry!.error!.message).toBe('Expected `presence` in the poll response to be an array of {topic, user, event, at}');
    expect(poller.presence).toEqual([]);
  });

  it('presence(users) asks GET /v1/presence with every user, URL-encoded, and resolves with the answer', async () => {
    const gateway = await startGateway();
    gateway.setUser('alice', { online: true, clients: 2, lastSeenAt: '2026-12-01T10:00:00.000Z' });
    gateway.setUser('bob@example.com', { online: false, lastSeenAt: '2026-11-30T08:00:00.000Z' });
    const client = shell.load(realFetch, undefined, gateway.url);
    const result = await client.presence({ token: 'tok', users: ['alice', 'bob@example.com', 'c:d'] });
    expect(result).toEqual({
      users: {
        alice: { online: true, clients: 2, lastSeenAt: '2026-12-01T10:00:00.000Z' },
        'bob@example.com': { online: false, lastSeenAt: '2026-11-30T08:00:00.000Z' },
        'c:d': { online: false, lastSeenAt: null },
      },
    });
    const [request] = gateway.requests;
    expect(request!.method).toBe('GET');
    expect(request!.rawUrl).toMatch(/^\/v1\/presence\?user=alice&user=bob%40example\.com&user=c%3Ad(&|$)/);
    expect(request!.token).toBe('tok');
    expect(request!.body).toBeUndefined();
  });

  it('topicPresence(name) asks GET /v1/topics/{name}/presence with the name URL-encoded; without `members` above the maximum', async () => {
    const gateway = await startGateway({ membersMax: 2 });
    const alice = { user: 'alice', clients: 1, since: '2026-12-01T10:00:00.000Z' };
    const bob = { user: 'bob', clients: 3, since: '2026-12-01T09:00:00.000Z' };
    gateway.setTopic('room:1', [alice, bob]);
    gateway.setTopic('lobby', [alice, bob, { user: 'carol', clients: 1, since: '2026-12-01T08:00:00.000Z' }]);
    const client = shell.load(realFetch, undefined, gateway.url);
    expect(await client.topicPresence({ token: 'tok', topic: 'room:1' })).toEqual({ count: 2, members: [alice, bob] });
    const crowded = await client.topicPresence({ token: 'tok', topic: 'lobby' });
    expect(crowded).toEqual({ count: 3 });
    expect('members' in crowded).toBe(false);
    expect(await client.topicPresence({ token: 'tok', topic: 'empty.room_2' })).toEqual({ count: 0, members: [] });
    expect(gateway.requests.map((request) => request.rawUrl.split('?')[0])).toEqual(['/v1/topics/room%3A1/presence', '/v1/topics/lobby/presence', '/v1/topics/empty.room_2/presence']);
    expect(gateway.requests.map((request) => [request.method, request.token])).toEqual(Array(3).fill(['GET', 'tok']));
  });

  it.each([
    ['too_many_users', 400, 'presence'],
    ['invalid_user_id', 400, 'presence'],
    ['forbidden_presence', 403, 'presence'],
    ['token_expired', 401, 'presence'],
    ['invalid_topic', 400, 'topicPresence'],
    ['forbidden_topic', 403, 'topicPresence'],
    ['invalid_token', 401, 'topicPresence'],
  ] as const)('rejects with %s (%i) from %s, without another request', async (code, status, helper) => {
    const gateway = await startGateway({ usersMax: 2, forbiddenTopics: ['secret'] });
    gateway.forbidPresence('limited');
    const client = shell.load(realFetch, undefined, gateway.url);
    // Refusals the stand-in makes itself where it can; the others scripted (the client checks those inputs first).
    const ask = {
      too_many_users: () => client.presence({ token: 'tok', users: ['a', 'b', 'c'] }),
      invalid_user_id: () => (gateway.scriptLookups(refusal(400, 'invalid_user_id')), client.presence({ token: 'tok', users: ['a'] })),
      forbidden_presence: () => client.presence({ token: 'limited', users: ['a'] }),
      token_expired: () => (gateway.scriptLookups(refusal(401, 'token_expired')), client.presence({ token: 'tok', users: ['a'] })),
      invalid_topic: () => (gateway.scriptLookups(refusal(400, 'invalid_topic')), client.topicPresence({ token: 'tok', topic: 'room:1' })),
      forbidden_topic: () => client.topicPresence({ token: 'tok', topic: 'secret' }),
      invalid_token: () => (gateway.scriptLookups(refusal(401, 'invalid_token')), client.topicPresence({ token: 'tok', topic: 'room:1' })),
    }[code];
    await expect(ask()).rejects.toMatchObject({ code, status, retryable: false });
    expect(gateway.requests).toHaveLength(1);
    expect(gateway.requests[0]!.url.pathname).toBe(helper === 'presence' ? '/v1/presence' : '/v1/topics/' + (code === 'forbidden_topic' ? 'secret' : 'room%3A1') + '/presence');
  });

  it('retries a 503 and an answer that is not what the API promises, then resolves', async () => {
    const gateway = await startGateway();
    gateway.setUser('alice', { online: true, clients: 1, lastSeenAt: '2026-12-01T10:00:00.000Z' });
    gateway.setTopic('room:1', []);
    // A 503, then an answer without `users`.
    gateway.scriptLookups(refusal(503, 'store_unavailable'), { body: { online: true } });
    const client = shell.load(realFetch, undefined, gateway.url);
    expect(await client.presence({ token: 'tok', users: ['alice'] })).toEqual({ users: { alice: { online: true, clients: 1, lastSeenAt: '2026-12-01T10:00:00.000Z' } } });
    expect(gateway.requests).toHaveLength(3);
    gateway.scriptLookups({ body: { count: 'two' } }, { body: { count: 1, members: 'alice' } });
    expect(await client.topicPresence({ token: 'tok', topic: 'room:1' })).toEqual({ count: 0, members: [] });
    expect(gateway.requests).toHaveLength(6);
  });

  it('checks users and topic names before sending anything', async () => {
    const gateway = await startGateway();
    const client = shell.load(realFetch, undefined, gateway.url);
    await expect(async () => client.presence({ token: 'tok', users: [] })).rejects.toThrow('Expected `users` to be a non-empty array of user ids, got object');
    await expect(async () => client.presence({ token: 'tok', users: 'alice' as never })).rejects.toThrow('Expected `users` to be a non-empty array of user ids, got "alice"');
    await expect(async () => client.presence({ token: 'tok', users: ['alice', 'not valid!'] })).rejects.toThrow('Expected `users[1]` to be a user id matching');
    await expect(async () => client.topicPresence({ token: 'tok', topic: 'room 1' })).rejects.toThrow('Expected `topic` to be a topic name matching');
    await expect(async () => client.topicPresence({ token: 'tok', topic: undefined as never })).rejects.toThrow('Expected `topic` to be a topic name matching');
    expect(gateway.requests).toHaveLength(0);
  });
});
