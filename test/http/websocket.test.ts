import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { backendCases, redisClusterCases } from '../support/backends.js';
import { startTestGateway } from '../support/gateway.js';
import { useTestGateway } from '../support/gateway.js';
import { sleep, waitFor } from '../support/wait.js';

interface Frame {
  type: string;
  messages?: Array<{ id: number; body: unknown; topic?: string; seq?: number }>;
  cursor?: number;
  positions?: Record<string, number>;
  events?: Array<{ topic: string; user: string; event: string }>;
}

/** A WebSocket to the gateway, with every frame it received and how it closed. */
async function connect(url: string, token: string, query = '', options: WebSocket.ClientOptions = {}): Promise<{ socket: WebSocket; frames: Frame[]; closed: Promise<{ code: number; reason: string }> }> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/ws?access_token=${encodeURIComponent(token)}${query ? `&${query}` : ''}`, options);
  const frames: Frame[] = [];
  socket.on('message', (data) => frames.push(JSON.parse(data.toString()) as Frame));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return { socket, frames, closed };
}

/** The status of a refused upgrade (the gateway answers it as HTTP). */
function refusal(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, { headers });
    socket.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    socket.on('open', () => reject(new Error('upgraded')));
    socket.on('error', () => {});
  });
}

const messagesOf = (frames: Frame[]) => frames.filter((frame) => frame.type === 'batch').flatMap((frame) => frame.messages ?? []);

describe.each([...backendCases('WebSocket'), ...redisClusterCases('WebSocket')])('GET /v1/ws on $name', ({ make }) => {
  const gw = useTestGateway(make, { PRESENCE_GRACE_S: '2', WS_PING_S: '1', CORS_ORIGINS: 'https://app.example.com' });

  it('sends each answer as a batch frame, acks only on an ack frame, and follows subscribe / unsubscribe', async () => {
    const [alice, bob] = [gw.nextUser(), gw.nextUser()];
    const topic = `ws:${Date.now().toString(36)}`;
    const bobToken = await gw.gateway.issueToken(bob, { topics: { [topic]: ['read'] } });
    const aliceToken = await gw.gateway.issueToken(alice, { topics: { [topic]: ['publish'] } });
    const { socket, frames } = await connect(gw.url, bobToken, 'client=tab1');
    expect((await gw.publish(alice, { to: bob, body: 'one' })).status).toBe(201);
    await waitFor(() => messagesOf(frames).length === 1, 5_000);
    const first = frames.find((frame) => frame.type === 'batch')!;
    expect(first).toMatchObject({ type: 'batch', cursor: expect.any(Number), messages: [{ body: 'one' }] });
    // Not acked by sending it.
    expect(await (await gw.request('/v1/mailbox', { token: bobToken })).json()).toMatchObject({ pending: 1 });
    socket.send(JSON.stringify({ type: 'ack', cursor: first.cursor }));
    await waitFor(async () => ((await (await gw.request('/v1/mailbox', { token: bobToken })).json()) as { pending: number }).pending === 0, 5_000);

    // Subscribed from the start of its history, the topic's messages come; unsubscribed, no more.
    expect((await gw.request('/v1/messages', { method: 'POST', token: aliceToken, json: { topic, body: 'earlier' } })).status).toBe(201);
    socket.send(JSON.stringify({ type: 'subscribe', topic, position: 0 }));
    await waitFor(() => messagesOf(frames).some((message) => message.body === 'earlier'), 5_000);
    expect(frames[frames.length - 1]).toMatchObject({ positions: { [topic]: 1 } });
    expect((await gw.request('/v1/messages', { method: 'POST', token: aliceToken, json: { topic, body: 'live' } })).status).toBe(201);
    await waitFor(() => messagesOf(frames).some((message) => message.body === 'live'), 5_000);
    socket.send(JSON.stringify({ type: 'unsubscribe', topic }));
    await sleep(200);
    expect((await gw.request('/v1/messages', { method: 'POST', token: aliceToken, json: { topic, body: 'after' } })).status).toBe(201);
    await sleep(500);
    expect(messagesOf(frames).map((message) => message.body)).toEqual(['one', 'earlier', 'live']);
    socket.close();
  });

  it('closes on a bad frame with 1003 or 1008 and the error code as reason, acking nothing; 1009 over 64 KiB', async () => {
    const cases: Array<[string | Buffer, number, string]> = [
      ['not json', 1003, 'invalid_json'],
      [Buffer.from([1, 2, 3]), 1003, 'invalid_json'],
      ['{"type":"nope"}', 1008, 'invalid_request'],
      ['{"type":"ack","cursor":-1}', 1008, 'invalid_cursor'],
      ['{"type":"subscribe","topic":"bad topic"}', 1008, 'invalid_topic'],
      ['{"type":"subscribe","topic":"not-mine"}', 1008, 'forbidden_topic'],
      [JSON.stringify({ type: 'ack', cursor: 1, pad: 'x'.repeat(70_000) }), 1009, ''],
    ];
    for (const [frame, code, reason] of cases) {
      const [sender, user] = [gw.nextUser(), gw.nextUser()];
      expect((await gw.publish(sender, { to: user, body: 'keep' })).status).toBe(201);
      const token = await gw.token(user);
      const { socket, closed } = await connect(gw.url, token);
      socket.send(frame);
      const ended = await closed;
      expect({ code: ended.code, reason: ended.reason.startsWith(reason) ? reason : ended.reason }, String(frame).slice(0, 40)).toEqual({ code, reason });
      expect(await (await gw.request('/v1/mailbox', { token })).json()).toMatchObject({ pending: 1 });
    }
  });

  it('refuses before upgrading: no token, a bad query, a foreign Origin, a plain GET', async () => {
    const token = await gw.token(gw.nextUser());
    expect((await refusal(gw.url, '/v1/ws')).status).toBe(401);
    const badCursor = await refusal(gw.url, `/v1/ws?access_token=${token}&cursor=x`);
    expect(badCursor.status).toBe(400);
    expect(JSON.parse(badCursor.body).error.code).toBe('invalid_cursor');
    expect((await refusal(gw.url, `/v1/ws?access_token=${token}`, { Origin: 'https://evil.example' })).status).toBe(403);
    const allowed = await connect(gw.url, token, '', { headers: { Origin: 'https://app.example.com' } });
    allowed.socket.close();
    expect((await refusal(gw.url, `/v1/elsewhere?access_token=${token}`)).status).toBe(404);
    const plain = await gw.request('/v1/ws', { token });
    expect(plain.status).toBe(400);
  });

  it('pings, and closes a peer that answers no pong', async () => {
    const token = await gw.token(gw.nextUser());
    const lively = await connect(gw.url, token);
    const silent = await connect(gw.url, await gw.token(gw.nextUser()), '', { autoPong: false });
    const silentClosed = await Promise.race([silent.closed, sleep(6_000).then(() => undefined)]);
    expect(silentClosed).toBeDefined();
    expect(lively.socket.readyState).toBe(WebSocket.OPEN);
    lively.socket.close();
  });

  it('sends presence frames with presence=1', async () => {
    const topic = `ws-presence:${Date.now().toString(36)}`;
    const [watcher, visitor] = [gw.nextUser(), gw.nextUser()];
    const watcherToken = await gw.gateway.issueToken(watcher, { topics: { [topic]: ['read', 'presence'] } });
    const visitorToken = await gw.gateway.issueToken(visitor, { topics: { [topic]: ['read'] } });
    const { socket, frames } = await connect(gw.url, watcherToken, `client=w&presence=1&topic=${topic}`);
    await sleep(200);
    await gw.request(`/v1/poll?wait=0&client=v&topic=${topic}`, { token: visitorToken });
    await waitFor(() => frames.some((frame) => frame.type === 'presence' && frame.events!.some((event) => event.user === visitor && event.event === 'join')), 5_000);
    socket.close();
  });

  it('cuts a reader that falls further behind than STREAM_BUFFER_BYTES; it resumes from its cursor with everything', async () => {
    const small = await startTestGateway(gw.backend, { STREAM_BUFFER_BYTES: '1024', PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' });
    try {
      const reader = `ws-slow-${Date.now().toString(36)}`;
      const readerToken = await small.issueToken(reader);
      const senderToken = await small.issueToken('ws-slow-sender');
      const { socket, closed } = await connect(small.url, readerToken);
      // Reads nothing more: the kernel's buffers fill, then the gateway's.
      (socket as unknown as { _socket: import('node:net').Socket })._socket.pause();
      await waitFor(() => small.engine.heldPollsOf(reader) === 1, 5_000);
      const body = 'x'.repeat(60_000);
      for (let index = 0; index < 200 && small.engine.heldPollsOf(reader) > 0; index++) {
        expect((await small.request('/v1/messages', { method: 'POST', token: senderToken, json: { to: reader, body } })).status).toBe(201);
      }
      await waitFor(() => small.engine.heldPollsOf(reader) === 0, 5_000);
      (socket as unknown as { _socket: import('node:net').Socket })._socket.resume();
      expect((await closed).code).toBe(1006);
      const pending = ((await (await small.request('/v1/mailbox', { token: readerToken })).json()) as { pending: number }).pending;
      expect(pending).toBeGreaterThan(10);
      const resumed = await connect(small.url, readerToken, 'limit=500');
      await waitFor(() => messagesOf(resumed.frames).length >= pending, 10_000);
      resumed.socket.close();
    } finally {
      await small.close();
    }
  }, 30_000);

  it('closes with 4401 token_expired when the token expires, and with 1001 when the gateway drains', async () => {
    const gateway = await startTestGateway(gw.backend, { JWT_CLOCK_TOLERANCE_S: '0' });
    try {
      const shortLived = await gateway.issueToken('ws-expiring', { expiresInSeconds: 2 });
      const expiring = await connect(gateway.url, shortLived);
      const lasting = await connect(gateway.url, await gateway.issueToken('ws-lasting'));
      const started = Date.now();
      expect(await expiring.closed).toEqual({ code: 4401, reason: 'token_expired' });
      expect(Date.now() - started).toBeLessThan(3_500);
      const closing = gateway.close();
      expect(await lasting.closed).toEqual({ code: 1001, reason: 'draining' });
      await closing;
    } finally {
      await gateway.close();
    }
  });
});
