import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { backendCases, redisClusterCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { sleep, waitFor } from '../support/wait.js';

interface StreamEvent {
  id?: string;
  data?: string;
  comment?: boolean;
  retry?: number;
}

/** An SSE connection read by hand: every event and comment as it arrives, and how it ended. */
function openStream(url: string, token: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; events: StreamEvent[]; raw: () => string; ended: Promise<void>; close(): void; body: () => string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream', ...headers }, agent: false }, (response) => {
      const events: StreamEvent[] = [];
      let text = '';
      let pending = '';
      response.setEncoding('utf8');
      const ended = new Promise<void>((done) => {
        response.on('end', done);
        response.on('close', done);
        response.on('error', () => done());
      });
      response.on('data', (chunk: string) => {
        text += chunk;
        pending += chunk;
        let boundary: number;
        while ((boundary = pending.indexOf('\n\n')) !== -1) {
          const block = pending.slice(0, boundary);
          pending = pending.slice(boundary + 2);
          const event: StreamEvent = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) event.comment = true;
            else if (line.startsWith('id: ')) event.id = line.slice(4);
            else if (line.startsWith('data: ')) event.data = line.slice(6);
            else if (line.startsWith('retry: ')) event.retry = Number(line.slice(7));
          }
          events.push(event);
        }
      });
      resolve({ status: response.statusCode ?? 0, headers: response.headers, events, raw: () => text, ended, close: () => request.destroy(), body: () => text });
    });
    request.on('error', reject);
  });
}

const batches = (events: StreamEvent[]) => events.filter((event) => event.data !== undefined).map((event) => ({ id: event.id, answer: JSON.parse(event.data!) as { messages: Array<{ id: number; body: unknown; topic?: string; seq?: number }>; cursor: number; positions?: Record<string, number>; presence?: unknown[] } }));

describe.each([...backendCases('SSE streams'), ...redisClusterCases('SSE streams')])('GET /v1/stream on $name', ({ make }) => {
  const gw = useTestGateway(make, { STREAM_HEARTBEAT_S: '1', STREAM_MAX_S: '4', PRESENCE_GRACE_S: '2' });

  it('streams each answer as an event whose id holds every position, acking nothing until the client acks', async () => {
    const [alice, bob] = [gw.nextUser(), gw.nextUser()];
    const topic = `stream:${Date.now().toString(36)}`;
    const bobToken = await gw.gateway.issueToken(bob, { topics: { [topic]: ['read'] } });
    const aliceToken = await gw.gateway.issueToken(alice, { topics: { [topic]: ['publish'] } });
    const stream = await openStream(`${gw.url}/v1/stream?topic=${topic}@0&client=tab1`, bobToken);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.headers['x-accel-buffering']).toBe('no');
    expect(stream.headers['cache-control']).toContain('no-store');
    await waitFor(() => stream.events.length > 0, 3_000);
    expect(stream.events[0]).toEqual({ retry: 2000 });

    expect((await gw.publish(alice, { to: bob, body: 'one' })).status).toBe(201);
    expect((await gw.request('/v1/messages', { method: 'POST', token: aliceToken, json: { topic, body: 'broadcast' } })).status).toBe(201);
    await waitFor(() => batches(stream.events).flatMap((batch) => batch.answer.messages).length === 2, 5_000);
    const received = batches(stream.events);
    const last = received[received.length - 1]!;
    expect(received.flatMap((batch) => batch.answer.messages.map((message) => message.body))).toEqual(['one', 'broadcast']);
    expect(last.id).toBe(`${last.answer.cursor};${topic}@1`);
    expect(last.answer.cursor).toBeGreaterThan(0);

    // Read is not acked: the mailbox still holds it until the client acks.
    expect(await (await gw.request('/v1/mailbox', { token: bobToken })).json()).toMatchObject({ pending: 1 });
    stream.close();
    await stream.ended;

    // A reconnect with the last id continues after it; one from the query's cursor 0 gets it again.
    const resumed = await openStream(`${gw.url}/v1/stream?cursor=0&topic=${topic}@0`, bobToken, { 'Last-Event-ID': last.id! });
    expect((await gw.publish(alice, { to: bob, body: 'two' })).status).toBe(201);
    await waitFor(() => batches(resumed.events).length > 0, 5_000);
    expect(batches(resumed.events).flatMap((batch) => batch.answer.messages.map((message) => message.body))).toEqual(['two']);
    resumed.close();
    const again = await openStream(`${gw.url}/v1/stream?cursor=0`, bobToken);
    await waitFor(() => batches(again.events).length > 0, 5_000);
    expect(batches(again.events)[0]!.answer.messages.map((message) => message.body)).toEqual(['one', 'two']);
    again.close();

    const acked = await gw.request('/v1/ack', { method: 'POST', token: bobToken, json: { cursor: batches(again.events)[0]!.answer.cursor } });
    expect(await acked.json()).toMatchObject({ acked: 2 });
    expect(await (await gw.request('/v1/mailbox', { token: bobToken })).json()).toMatchObject({ pending: 0 });
  });

  it('sends heartbeat comments, pads on request, and ends after STREAM_MAX_S', async () => {
    const user = gw.nextUser();
    const token = await gw.token(user);
    const started = Date.now();
    const stream = await openStream(`${gw.url}/v1/stream?pad=1`, token);
    await stream.ended;
    const lasted = Date.now() - started;
    expect(lasted).toBeGreaterThanOrEqual(3_900);
    expect(lasted).toBeLessThan(7_000);
    expect(stream.raw().startsWith(`:${' '.repeat(2048)}\n\n`)).toBe(true);
    expect(stream.events.filter((event) => event.comment && event.retry === undefined).length).toBeGreaterThanOrEqual(3);
    expect(gw.gateway.engine.heldPollsOf(user)).toBe(0);
  });

  it('refuses a bad query or Last-Event-ID before opening, with the poll\'s codes', async () => {
    const user = gw.nextUser();
    const token = await gw.token(user);
    const cases: Array<[string, Record<string, string>, string]> = [
      ['cursor=x', {}, 'invalid_cursor'],
      ['topic=bad%20name', {}, 'invalid_topic'],
      ['', { 'Last-Event-ID': 'not-an-id' }, 'invalid_cursor'],
      ['topic=room:1', {}, 'forbidden_topic'],
      ['client=no%20spaces', {}, 'invalid_request'],
    ];
    for (const [query, headers, code] of cases) {
      const stream = await openStream(`${gw.url}/v1/stream?${query}`, token, headers);
      await stream.ended;
      expect(stream.status, query).toBeGreaterThanOrEqual(400);
      expect(JSON.parse(stream.body()).error.code, query).toBe(code);
    }
    const publishOnly = await gw.gateway.issueToken(gw.nextUser(), { scope: ['publish'] });
    const refused = await openStream(`${gw.url}/v1/stream`, publishOnly);
    await refused.ended;
    expect(refused.status).toBe(403);
  });

  it('carries presence events with presence=1', async () => {
    const topic = `stream-presence:${Date.now().toString(36)}`;
    const [watcher, visitor] = [gw.nextUser(), gw.nextUser()];
    const watcherToken = await gw.gateway.issueToken(watcher, { topics: { [topic]: ['read', 'presence'] } });
    const visitorToken = await gw.gateway.issueToken(visitor, { topics: { [topic]: ['read'] } });
    const stream = await openStream(`${gw.url}/v1/stream?topic=${topic}&client=w&presence=1`, watcherToken);
    await sleep(200);
    await gw.request(`/v1/poll?wait=0&client=v&topic=${topic}`, { token: visitorToken });
    await waitFor(() => batches(stream.events).some((batch) => JSON.stringify(batch.answer.presence ?? []).includes(visitor)), 5_000);
    stream.close();
  });

  it('disconnects a reader that falls further behind than STREAM_BUFFER_BYTES, which resumes from its id', async () => {
    const { startTestGateway } = await import('../support/gateway.js');
    const small = await startTestGateway(gw.backend, { STREAM_BUFFER_BYTES: '1024', MAX_MESSAGE_BYTES: '65536', PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' });
    try {
      const [sender, reader] = ['slow-sender', `slow-reader-${Date.now().toString(36)}`];
      const readerToken = await small.issueToken(reader);
      const senderToken = await small.issueToken(sender);
      // A raw socket that never reads: the gateway's send buffer grows once the kernel's is full.
      const socket = await new Promise<import('node:net').Socket>((resolve, reject) => {
        const request = http.get(`${small.url}/v1/stream`, { headers: { Authorization: `Bearer ${readerToken}` }, agent: false });
        request.on('socket', (raw) => raw.once('connect', () => resolve(raw)));
        request.on('error', () => {});
        request.on('response', (response) => response.pause());
        setTimeout(() => reject(new Error('no socket')), 3_000);
      });
      socket.pause();
      await waitFor(() => small.engine.heldPollsOf(reader) === 1, 5_000);
      const body = 'x'.repeat(60_000);
      for (let index = 0; index < 200 && small.engine.heldPollsOf(reader) > 0; index++) {
        const response = await small.request('/v1/messages', { method: 'POST', token: senderToken, json: { to: reader, body } });
        expect(response.status).toBe(201);
      }
      // Cut: the stream holds no poll any more, however long the reader stays silent.
      await waitFor(() => small.engine.heldPollsOf(reader) === 0, 5_000);
      await sleep(300);
      expect(small.engine.heldPollsOf(reader)).toBe(0);
      socket.destroy();
      // Nothing was acked: all of it is still pending for the next stream.
      const summary = (await (await small.request('/v1/mailbox', { token: readerToken })).json()) as { pending: number };
      expect(summary.pending).toBeGreaterThan(10);
      // Resumed (here from the start, as nothing was acked): the next stream delivers them.
      const resumed = await openStream(`${small.url}/v1/stream?limit=500`, readerToken);
      await waitFor(() => batches(resumed.events).flatMap((batch) => batch.answer.messages).length >= summary.pending, 10_000);
      resumed.close();
    } finally {
      await small.close();
    }
  }, 30_000);
});
