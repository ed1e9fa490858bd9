import { describe, expect, it } from 'vitest';
import type { TopicGrants } from '../../src/auth/claims.js';
import type { TokenScope } from '../../src/auth/tokens.js';
import { backendCases, redisClusterCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { waitFor } from '../support/wait.js';

interface PresenceEvent {
  topic: string;
  user: string;
  event: 'join' | 'leave';
  at: string;
}
interface PollAnswer {
  messages: unknown[];
  cursor: number;
  positions?: Record<string, number>;
  presence?: PresenceEvent[];
  error?: { code: string; message: string };
}
interface UsersAnswer {
  users: Record<string, { online: boolean; clients?: number; lastSeenAt: string | null }>;
  error?: { code: string; message: string };
}

const GRACE_S = 2;

describe.each([...backendCases('presence API'), ...redisClusterCases('presence API')])('presence over HTTP on $name', ({ make }) => {
  const gw = useTestGateway(make, { PRESENCE_GRACE_S: String(GRACE_S), PRESENCE_MEMBERS_MAX: '2', POLL_WAIT_MAX_S: '10', POLL_MAX_PER_USER: '4' });
  let topicCount = 0;
  const nextTopic = () => `desk:${Date.now().toString(36)}-${++topicCount}`;

  async function tokenWith(user: string, claims: { topics?: TopicGrants; pub?: string[]; scope?: TokenScope[] } = {}): Promise<string> {
    return gw.gateway.issueToken(user, claims);
  }
  async function poll(token: string, query: string): Promise<{ status: number; body: PollAnswer }> {
    const response = await gw.request(`/v1/poll?${/(^|&)wait=/.test(query) ? query : `wait=0&${query}`}`, { token });
    return { status: response.status, body: (await response.json()) as PollAnswer };
  }
  async function presenceOf(token: string, users: string[]): Promise<{ status: number; body: UsersAnswer }> {
    const response = await gw.request(`/v1/presence?${users.map((user) => `user=${encodeURIComponent(user)}`).join('&')}`, { token });
    return { status: response.status, body: (await response.json()) as UsersAnswer };
  }
  async function membersOf(token: string, topic: string): Promise<{ status: number; body: { count: number; members?: Array<{ user: string; clients: number; since: string }>; error?: { code: string } } }> {
    const response = await gw.request(`/v1/topics/${encodeURIComponent(topic)}/presence`, { token });
    return { status: response.status, body: (await response.json()) as never };
  }
  /** Held polls of the gateway (the metric): a poll counts for presence from when it is held. */
  async function heldPolls(): Promise<number> {
    return gw.gateway.engine.heldPolls;
  }

  it('counts a user online while a client holds a poll, distinct clients, and offline with lastSeenAt only after the grace', async () => {
    const [alice, watcher] = [gw.nextUser(), gw.nextUser()];
    const token = await tokenWith(alice);
    const service = await tokenWith(watcher, { scope: ['presence'] });
    expect((await presenceOf(service, [alice])).body).toEqual({ users: { [alice]: { online: false, lastSeenAt: null } } });

    const before = await heldPolls();
    const held = [poll(token, 'wait=3&client=tab-1'), poll(token, 'wait=3&client=tab-2'), poll(token, 'wait=3&client=tab-2')];
    await waitFor(async () => (await heldPolls()) === before + 3, 5_000);
    await waitFor(async () => (await presenceOf(service, [alice])).body.users[alice]?.online === true, 5_000);
    expect((await presenceOf(service, [alice])).body.users[alice]).toEqual({ online: true, clients: 2, lastSeenAt: expect.any(String) });
    await Promise.all(held);
    const ended = Date.now();

    // Inside the grace: still online, although no poll is held.
    expect((await presenceOf(service, [alice])).body.users[alice]?.online).toBe(true);
    await waitFor(async () => (await presenceOf(service, [alice])).body.users[alice]?.online === false, (GRACE_S + 4) * 1000);
    const offlineAfter = Date.now() - ended;
    expect(offlineAfter).toBeGreaterThanOrEqual(GRACE_S * 1000 - 100);
    const { lastSeenAt } = (await presenceOf(service, [alice])).body.users[alice]!;
    expect(Math.abs(Date.parse(lastSeenAt!) - ended)).toBeLessThan(1_500);
  });

  it('counts a poll without `client` as its user\'s one anonymous client, short polls included', async () => {
    const [bob, watcher] = [gw.nextUser(), gw.nextUser()];
    const token = await tokenWith(bob);
    const service = await tokenWith(watcher, { scope: ['presence'] });
    expect((await poll(token, 'wait=0')).status).toBe(200);
    expect((await poll(token, 'wait=0')).status).toBe(200);
    await waitFor(async () => (await presenceOf(service, [bob])).body.users[bob]?.online === true, 3_000);
    expect((await presenceOf(service, [bob])).body.users[bob]?.clients).toBe(1);
  });

  it('lets a token see the users it may publish to and itself; others only with the `presence` scope', async () => {
    const [customer, agent, stranger, service] = [gw.nextUser(), gw.nextUser(), gw.nextUser(), gw.nextUser()];
    const customerToken = await tokenWith(customer, { pub: [agent] });
    const serviceToken = await tokenWith(service, { scope: ['presence'], pub: [] });
    expect((await presenceOf(customerToken, [agent, customer])).status).toBe(200);
    const refused = await presenceOf(customerToken, [agent, stranger]);
    expect(refused.status).toBe(403);
    expect(refused.body.error?.code).toBe('forbidden_presence');
    expect(refused.body.users).toBeUndefined();
    expect((await presenceOf(serviceToken, [stranger, agent])).status).toBe(200);
    // A publish-only token may ask about its recipients too: presence queries take any scope.
    const publisher = await tokenWith(gw.nextUser(), { scope: ['publish'], pub: [`${agent.slice(0, 3)}*`] });
    expect((await presenceOf(publisher, [agent])).status).toBe(200);
  });

  it('refuses bad presence queries with their codes', async () => {
    const service = await tokenWith(gw.nextUser(), { scope: ['presence'] });
    const many = Array.from({ length: 101 }, (_, index) => `u${index}`);
    expect((await presenceOf(service, many)).body.error?.code).toBe('too_many_users');
    expect((await presenceOf(service, many)).status).toBe(400);
    expect((await presenceOf(service, many.slice(0, 100))).status).toBe(200);
    expect((await presenceOf(service, ['no spaces'])).body.error?.code).toBe('invalid_user_id');
    expect((await presenceOf(service, [])).body.error?.code).toBe('invalid_request');
    const reader = await tokenWith(gw.nextUser(), { topics: { 'desk:*': ['read'] } });
    const topic = nextTopic();
    expect((await membersOf(reader, topic)).status).toBe(403);
    expect((await membersOf(reader, topic)).body.error?.code).toBe('forbidden_topic');
    expect((await membersOf(service, 'bad topic!')).body.error?.code).toBe('invalid_topic');
  });

  it('refuses a bad `client` or `presence` on a poll, holding nothing and acking nothing', async () => {
    const [sender, user] = [gw.nextUser(), gw.nextUser()];
    expect((await gw.publish(sender, { to: user, body: 'keep me' })).status).toBe(201);
    const token = await tokenWith(user);
    for (const query of ['client=has%20space', `client=${'x'.repeat(65)}`, 'client=a&client=b', 'presence=yes']) {
      const { status, body } = await poll(token, `cursor=1&${query}`);
      expect(status, query).toBe(400);
      expect(body.error?.code, query).toBe('invalid_request');
    }
    for (const json of [{ client: 7 }, { presence: 'often' }]) {
      const response = await gw.request('/v1/poll', { method: 'POST', token, json: { wait: 0, ...json } });
      expect(response.status).toBe(400);
    }
    expect((await poll(token, 'cursor=0')).body.messages).toHaveLength(1);
  });

  it('lists a topic\'s members (users with a live client reading it), and above PRESENCE_MEMBERS_MAX only counts them', async () => {
    const topic = nextTopic();
    const [a, b, c] = [gw.nextUser(), gw.nextUser(), gw.nextUser()];
    const grants = { [topic]: ['read', 'presence'] } as TopicGrants;
    const [ta, tb, tc] = await Promise.all([tokenWith(a, { topics: grants }), tokenWith(b, { topics: grants }), tokenWith(c, { topics: grants })]);
    await poll(ta, `client=a1&topic=${topic}`);
    await poll(ta, `client=a2&topic=${topic}`);
    await poll(tb, `client=b1&topic=${topic}`);
    await waitFor(async () => (await membersOf(ta, topic)).body.count === 2, 3_000);
    const listed = (await membersOf(ta, topic)).body;
    expect(listed.members?.map((member) => [member.user, member.clients]).sort()).toEqual([
      [a, 2],
      [b, 1],
    ]);
    await poll(tc, `client=c1&topic=${topic}`);
    await waitFor(async () => (await membersOf(ta, topic)).body.count === 3, 3_000);
    expect((await membersOf(ta, topic)).body).toEqual({ count: 3 });
  });

  it('answers a held `presence=1` poll with joins and leaves of its topics (leave only after the grace), and not without the right', async () => {
    const topic = nextTopic();
    const [watcher, blind, visitor] = [gw.nextUser(), gw.nextUser(), gw.nextUser()];
    const watcherToken = await tokenWith(watcher, { topics: { [topic]: ['read', 'presence'] } });
    const blindToken = await tokenWith(blind, { topics: { [topic]: ['read'] } });
    const visitorToken = await tokenWith(visitor, { topics: { [topic]: ['read'] } });
    // A reader without the right, held first (its own join reaches nobody yet).
    const before = await heldPolls();
    const notWatching = poll(blindToken, `wait=6&client=b&presence=1&topic=${topic}@0`);
    await waitFor(async () => (await membersOf(watcherToken, topic)).body.count === 1, 5_000);
    // The watcher's own join answers its first poll.
    const own = await poll(watcherToken, `wait=5&client=w&presence=1&topic=${topic}@0`);
    expect(own.body.presence).toEqual([{ topic, user: watcher, event: 'join', at: expect.any(String) }]);

    const watching = poll(watcherToken, `wait=8&client=w&presence=1&topic=${topic}@0`);
    await waitFor(async () => (await heldPolls()) === before + 2, 5_000);
    const visit = await poll(visitorToken, `client=v&topic=${topic}@0`);
    const visitEnded = Date.now();
    expect(visit.status).toBe(200);
    const joined = (await watching).body;
    expect(joined.presence).toEqual([{ topic, user: visitor, event: 'join', at: expect.any(String) }]);
    expect(joined.messages).toEqual([]);
    expect(joined.positions).toEqual({ [topic]: 0 });

    // The leave comes after the grace, not before: a poll held meanwhile sees it when it happens.
    const leaving = await poll(watcherToken, `wait=8&client=w&presence=1&topic=${topic}@0`);
    const leftAfter = Date.now() - visitEnded;
    expect(leaving.body.presence).toEqual([{ topic, user: visitor, event: 'leave', at: expect.any(String) }]);
    expect(leftAfter).toBeGreaterThanOrEqual(GRACE_S * 1000 - 100);
    expect(leftAfter).toBeLessThan(GRACE_S * 1000 + 3_000);
    // Without the `presence` right the same poll is answered by its timeout, with no events.
    const blindAnswer = (await notWatching).body;
    expect(blindAnswer.presence).toBeUndefined();
  });

  it('answers a client\'s next `presence=1` poll with what its topics heard between its polls', async () => {
    const topic = nextTopic();
    const [watcher, visitor] = [gw.nextUser(), gw.nextUser()];
    const watcherToken = await tokenWith(watcher, { topics: { [topic]: ['read', 'presence'] } });
    const visitorToken = await tokenWith(visitor, { topics: { [topic]: ['read'] } });
    // Short polls: the watcher is never held while the visitor joins.
    await poll(watcherToken, `client=w&presence=1&topic=${topic}@0`);
    await poll(watcherToken, `client=other&presence=1&topic=${topic}@0`);
    await poll(visitorToken, `client=v&topic=${topic}@0`);
    await waitFor(async () => (await membersOf(watcherToken, topic)).body.count === 2, 5_000);
    // Let the event travel (the bus) before the next poll.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const next = await poll(watcherToken, `client=w&presence=1&topic=${topic}@0`);
    // (Its own join may come too: through Redis it can arrive after its first poll ended.)
    expect(next.body.presence?.filter((event) => event.user === visitor)).toEqual([{ topic, user: visitor, event: 'join', at: expect.any(String) }]);
    // Told once; another client of the same user had its own gap.
    expect((await poll(watcherToken, `client=w&presence=1&topic=${topic}@0`)).body.presence).toBeUndefined();
    expect((await poll(watcherToken, `client=other&presence=1&topic=${topic}@0`)).body.presence?.filter((event) => event.user === visitor)).toEqual([{ topic, user: visitor, event: 'join', at: expect.any(String) }]);
    // Without `client` nothing can be kept for it.
    expect((await poll(watcherToken, `presence=1&topic=${topic}@0`)).body.presence).toBeUndefined();
  });

  it('is 404 not_found with PRESENCE_GRACE_S=0 (presence off)', async () => {
    const { startTestGateway } = await import('../support/gateway.js');
    const off = await startTestGateway(gw.backend, { PRESENCE_GRACE_S: '0' });
    try {
      const token = await off.issueToken('someone', { scope: ['presence'] });
      const response = await off.request('/v1/presence?user=someone', { token });
      expect(response.status).toBe(404);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('not_found');
      expect((await off.request('/v1/poll?wait=0&client=c1&presence=1', { token: await off.issueToken('someone') })).status).toBe(200);
    } finally {
      await off.close();
    }
  });
});
