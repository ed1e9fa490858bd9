import { describe, expect, it } from 'vitest';
import type { TopicGrants } from '../../src/auth/claims.js';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { waitFor } from '../support/wait.js';

interface TopicAnswer {
  messages: Array<{ id: number; from: string; body: unknown; topic?: string; seq?: number }>;
  cursor: number;
  positions?: Record<string, number>;
  resets?: Array<{ topic: string; earliest: number }>;
}

describe.each(backendCases('topics API'))('topics over HTTP on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '10', POLL_TOPICS_MAX: '3', POLL_MAX_PER_USER: '4' });
  let topicCount = 0;
  const nextTopic = () => `room:${Date.now().toString(36)}-${++topicCount}`;

  async function tokenWith(user: string, topics: TopicGrants): Promise<string> {
    return gw.gateway.issueToken(user, { topics });
  }
  async function publishTo(token: string, json: unknown, path = '/v1/messages'): Promise<Response> {
    return gw.request(path, { method: 'POST', token, json });
  }
  async function pollTopics(token: string, query: string): Promise<{ status: number; body: TopicAnswer & { error?: { code: string } } }> {
    const response = await gw.request(`/v1/poll?${/(^|&)wait=/.test(query) ? query : `wait=0&${query}`}`, { token });
    return { status: response.status, body: (await response.json()) as TopicAnswer & { error?: { code: string } } };
  }

  it('stores one row per topic message, answers its seq, and every reader reads it with topic and seq', async () => {
    const topic = nextTopic();
    const [agent, customer, second] = [gw.nextUser(), gw.nextUser(), gw.nextUser()];
    const writer = await tokenWith(agent, { [topic]: ['read', 'publish'] });
    const readerA = await tokenWith(customer, { 'room:*': ['read'] });
    const readerB = await tokenWith(second, { '*': ['read'] });

    const first = await publishTo(writer, { topic, id: 'm-1', body: { text: 'hello' } });
    expect(first.status).toBe(201);
    const firstAnswer = (await first.json()) as { id: number; seq: number; duplicate: boolean };
    expect(firstAnswer).toEqual({ id: expect.any(Number), seq: 1, duplicate: false });
    const repeat = await publishTo(writer, { topic, id: 'm-1', body: { text: 'hello' } });
    expect(repeat.status).toBe(200);
    expect(await repeat.json()).toEqual({ id: firstAnswer.id, seq: 1, duplicate: true });
    expect((await publishTo(writer, { topic, body: 'two' })).status).toBe(201);

    for (const token of [readerA, readerB]) {
      const { status, body } = await pollTopics(token, `topic=${topic}@0`);
      expect(status).toBe(200);
      expect(body.messages.map((message) => [message.topic, message.seq, message.from, message.body])).toEqual([
        [topic, 1, agent, { text: 'hello' }],
        [topic, 2, agent, 'two'],
      ]);
      expect(body.positions).toEqual({ [topic]: 2 });
      expect(body.cursor).toBe(0);
    }
    const rows = await gw.knex('messages').where({ user_id: `#${topic}` }).count({ n: '*' }).first();
    expect(Number(rows?.n)).toBe(2);
  });

  it('reads from a position, and "from now" learns the head without anything older', async () => {
    const topic = nextTopic();
    const user = gw.nextUser();
    const token = await tokenWith(user, { [topic]: ['read', 'publish'] });
    for (const body of ['a', 'b', 'c']) expect((await publishTo(token, { topic, body })).status).toBe(201);
    const fromOne = await pollTopics(token, `topic=${topic}@1`);
    expect(fromOne.body.messages.map((message) => message.body)).toEqual(['b', 'c']);
    const fromNow = await pollTopics(token, `topic=${topic}`);
    expect(fromNow.body).toEqual({ messages: [], cursor: 0, positions: { [topic]: 3 } });
    const unknown = nextTopic();
    const fresh = await tokenWith(user, { '*': ['read'] });
    expect((await pollTopics(fresh, `topic=${unknown}`)).body.positions).toEqual({ [unknown]: 0 });
  });

  it('wakes a held poll reading a topic, and "from now" misses nothing published during the wait', async () => {
    const topic = nextTopic();
    const [writerUser, readerUser] = [gw.nextUser(), gw.nextUser()];
    const writer = await tokenWith(writerUser, { [topic]: ['publish'] });
    const reader = await tokenWith(readerUser, { [topic]: ['read'] });
    expect((await publishTo(writer, { topic, body: 'before' })).status).toBe(201);
    const held = pollTopics(reader, `wait=5&topic=${topic}`);
    await waitFor(() => gw.gateway.engine.readersOf(topic) === 1);
    expect((await publishTo(writer, { topic, body: 'during' })).status).toBe(201);
    const { body } = await held;
    expect(body.messages.map((message) => message.body)).toEqual(['during']);
    expect(body.positions).toEqual({ [topic]: 2 });
  });

  it('answers the mailbox and several topics together, within one limit', async () => {
    const [t1, t2] = [nextTopic(), nextTopic()];
    const [sender, reader] = [gw.nextUser(), gw.nextUser()];
    const writer = await tokenWith(sender, { '*': ['publish'] });
    const readerToken = await tokenWith(reader, { '*': ['read'] });
    expect((await publishTo(writer, { messages: [{ to: reader, body: 'direct' }, { topic: t1, body: 'one' }, { topic: t1, body: 'two' }, { topic: t2, body: 'three' }] }, '/v1/messages/batch')).status).toBe(201);
    const all = await pollTopics(readerToken, `topic=${t1}@0&topic=${t2}@0`);
    expect(all.body.messages.map((message) => [message.topic ?? null, message.body])).toEqual([
      [null, 'direct'],
      [t1, 'one'],
      [t1, 'two'],
      [t2, 'three'],
    ]);
    expect(all.body.positions).toEqual({ [t1]: 2, [t2]: 1 });
    const limited = await pollTopics(readerToken, `limit=2&topic=${t1}@0&topic=${t2}@0`);
    expect(limited.body.messages.map((message) => message.body)).toEqual(['direct', 'one']);
    expect(limited.body.positions).toEqual({ [t1]: 1, [t2]: 0 });
    const next = await pollTopics(readerToken, `cursor=${limited.body.cursor}&topic=${t1}@1&topic=${t2}@0`);
    expect(next.body.messages.map((message) => message.body)).toEqual(['two', 'three']);
  });

  it('takes the same as a POST body (application/json or text/plain)', async () => {
    const topic = nextTopic();
    const user = gw.nextUser();
    const token = await tokenWith(user, { [topic]: ['read', 'publish'] });
    expect((await publishTo(token, { topic, body: 1 })).status).toBe(201);
    const json = await gw.request('/v1/poll', { method: 'POST', token, json: { wait: 0, topics: { [topic]: 0 } } });
    expect(json.status).toBe(200);
    expect(((await json.json()) as TopicAnswer).positions).toEqual({ [topic]: 1 });
    const plain = await gw.request('/v1/poll', { method: 'POST', token, headers: { 'Content-Type': 'text/plain' }, body: JSON.stringify({ wait: 0, topics: { [topic]: null } }) });
    expect(((await plain.json()) as TopicAnswer).positions).toEqual({ [topic]: 1 });
    const badWait = await gw.request('/v1/poll', { method: 'POST', token, json: { wait: 99 } });
    expect(badWait.status).toBe(400);
    expect(((await badWait.json()) as { error: { code: string } }).error.code).toBe('invalid_wait');
    const unknownField = await gw.request('/v1/poll', { method: 'POST', token, json: { wait: 0, topic: 'x' } });
    expect(((await unknownField.json()) as { error: { code: string } }).error.code).toBe('unknown_field');
  });

  it('refuses bad topic requests with their codes and stores or answers nothing', async () => {
    const topic = nextTopic();
    const [user, other] = [gw.nextUser(), gw.nextUser()];
    const token = await tokenWith(user, { [topic]: ['read', 'publish'], 'announce': ['read'] });
    const plain = await gw.token(other);
    const cases: Array<[Promise<Response>, number, string]> = [
      [publishTo(token, { to: other, topic, body: 1 }), 400, 'invalid_request'],
      [publishTo(token, { body: 1 }), 400, 'invalid_request'],
      [publishTo(token, { topic, body: 1, receipt: true }), 400, 'invalid_request'],
      [publishTo(token, { topic: 'bad name', body: 1 }), 400, 'invalid_topic'],
      [publishTo(token, { topic: 'announce', body: 1 }), 403, 'forbidden_topic'],
      [publishTo(plain, { topic, body: 1 }), 403, 'forbidden_topic'],
      [publishTo(token, { messages: [{ topic, body: 1 }, { topic: 'announce', body: 2 }] }, '/v1/messages/batch'), 403, 'forbidden_topic'],
      [gw.request(`/v1/poll?wait=0&topic=${topic}@0&topic=other`, { token }), 403, 'forbidden_topic'],
      [gw.request(`/v1/poll?wait=0&topic=${topic}`, { token: plain }), 403, 'forbidden_topic'],
      [gw.request('/v1/poll?wait=0&topic=a%20b', { token }), 400, 'invalid_topic'],
      [gw.request('/v1/poll?wait=0&topic=a&topic=b&topic=c&topic=d', { token }), 400, 'too_many_topics'],
      [gw.request(`/v1/poll?wait=0&topic=${topic}@0&topic=${topic}@1`, { token }), 400, 'invalid_cursor'],
      [gw.request(`/v1/poll?wait=0&topic=${topic}@-1`, { token }), 400, 'invalid_cursor'],
      [gw.request(`/v1/poll?wait=0&topic=${topic}@x`, { token }), 400, 'invalid_cursor'],
      [gw.request('/v1/poll', { method: 'POST', token, json: { topics: { [topic]: 1.5 } } }), 400, 'invalid_cursor'],
      [gw.request('/v1/poll', { method: 'POST', token, json: { topics: [topic] } }), 400, 'invalid_request'],
    ];
    for (const [pending, status, code] of cases) {
      const response = await pending;
      expect({ status: response.status, code: ((await response.json()) as { error: { code: string } }).error.code }).toEqual({ status, code });
    }
    const stored = await gw.knex('messages').where({ sender_id: user }).count({ n: '*' }).first();
    expect(Number(stored?.n)).toBe(0);
  });

  it('rejects a token whose topics claim is malformed (401 invalid_token)', async () => {
    const { SignJWT } = await import('jose');
    const secret = new TextEncoder().encode(gw.gateway.config.auth.jwtSecret!);
    const token = await new SignJWT({ topics: { 'room:1': ['write'] } }).setProtectedHeader({ alg: 'HS256' }).setSubject(gw.nextUser()).sign(secret);
    const response = await gw.request('/v1/poll?wait=0', { token });
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('invalid_token');
  });

  it('answers a publish retried after its message was trimmed as the duplicate it is, and reports the message trimmed', async () => {
    const topic = nextTopic();
    const user = gw.nextUser();
    const token = await tokenWith(user, { [topic]: ['read', 'publish'] });
    const first = (await (await publishTo(token, { topic, id: 'once', body: 'a' })).json()) as { id: number; seq: number };
    for (const body of ['b', 'c', 'd']) expect((await publishTo(token, { topic, body })).status).toBe(201);
    while ((await gw.gateway.store.trimTopics(1, 0, 100)) > 0);
    const retried = await publishTo(token, { topic, id: 'once', body: 'a' });
    expect(retried.status).toBe(200);
    expect(await retried.json()).toEqual({ id: first.id, seq: first.seq, duplicate: true });
    const status = await gw.request(`/v1/messages/${first.id}`, { token });
    expect(await status.json()).toMatchObject({ id: first.id, topic, status: 'trimmed' });
    const reused = await publishTo(token, { topic, id: 'once', body: 'other' });
    expect(reused.status).toBe(409);
  });

  it('tells a reader whose position fell below the trimmed history, and continues from the earliest', async () => {
    const topic = nextTopic();
    const user = gw.nextUser();
    const token = await tokenWith(user, { [topic]: ['read', 'publish'] });
    // Stored past the engine: a process answers readers from what it just committed itself (they
    // missed nothing, trimmed or not); the reset is for a reader that did miss something.
    const store = gw.gateway.store;
    await store.insertMessages([1, 2, 3, 4, 5].map((body) => ({ userId: `#${topic}`, senderId: user, body: String(body) })));
    while ((await store.trimTopics(2, 0, 100)) > 0);
    const left = await gw.knex('messages').where({ user_id: `#${topic}`, status: 'pending' }).orderBy('seq').pluck('seq');
    expect(left.map(Number)).toEqual([4, 5]);
    const behind = await pollTopics(token, `topic=${topic}@1`);
    expect(behind.body.resets).toEqual([{ topic, earliest: 4 }]);
    expect(behind.body.messages.map((message) => message.body)).toEqual([4, 5]);
    expect(behind.body.positions).toEqual({ [topic]: 5 });
    const current = await pollTopics(token, `topic=${topic}@3`);
    expect(current.body.resets).toBeUndefined();
    expect(current.body.messages.map((message) => message.body)).toEqual([4, 5]);
    const ahead = await pollTopics(token, `topic=${topic}@99`);
    expect(ahead.body.resets).toEqual([{ topic, earliest: 4 }]);
  });
});
