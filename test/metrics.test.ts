import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBus } from '../src/bus/memory-bus.js';
import { createEngine, type PollOutcome } from '../src/core/engine.js';
import { StoreUnavailableError } from '../src/errors.js';
import type { MessageStore } from '../src/store/types.js';
import { backendCases, type Backend } from './support/backends.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { sleep, waitFor } from './support/wait.js';

/** The value of one sample line (`name{labels} value`) in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

const METRICS_TOKEN = 'metrics-token-0123456789';

describe.each(backendCases('metrics'))('GET /metrics on $name', ({ make }) => {
  let backend: Backend;
  let gw: TestGateway;
  let seq = 0;
  const nextUser = () => `metrics-user-${++seq}`;

  async function scrape(): Promise<string> {
    const response = await gw.request('/metrics', { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return response.text();
  }

  beforeAll(async () => {
    backend = make();
    gw = await startTestGateway(backend, { POLL_WAIT_MAX_S: '5', POLL_MAX_PER_USER: '1', METRICS_TOKEN });
  });
  afterAll(async () => {
    await gw.close();
    await backend.cleanup();
  });

  it('refuses a scrape without the metrics token or with a wrong one', async () => {
    const missing = await gw.request('/metrics');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ error: { code: 'missing_token', message: expect.any(String) } });
    const wrong = await gw.request('/metrics', { headers: { Authorization: 'Bearer not-the-metrics-token' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { code: 'invalid_token' } });
    // A user's JWT is not the metrics token either.
    const jwt = await gw.request('/metrics', { token: await gw.tokenFor(nextUser()) });
    expect(jwt.status).toBe(401);
  });

  it('reports health gauges and event-loop lag', async () => {
    const text = await scrape();
    expect(sample(text, 'lpg_bus_healthy')).toBe(1);
    expect(sample(text, 'lpg_store_healthy')).toBe(1);
    expect(sample(text, 'nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
    expect(text).toContain('# TYPE lpg_delivery_latency_seconds histogram');
  });

  it('counts held polls, publishes, deliveries and their latency', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    const before = await scrape();
    const held = gw.request('/v1/poll?wait=5', { token: await gw.tokenFor(bob) });
    await waitFor(() => gw.engine.heldPollsOf(bob) === 1);
    expect(sample(await scrape(), 'lpg_held_polls')).toBe((sample(before, 'lpg_held_polls') ?? 0) + 1);

    const aliceToken = await gw.tokenFor(alice);
    expect((await gw.request('/v1/messages', { method: 'POST', token: aliceToken, json: { to: bob, id: 'm1', body: 1 } })).status).toBe(201);
    expect((await gw.request('/v1/messages', { method: 'POST', token: aliceToken, json: { to: bob, id: 'm1', body: 1 } })).status).toBe(200);
    const answer = (await (await held).json()) as { messages: unknown[] };
    expect(answer.messages).toHaveLength(1);

    const after = await scrape();
    const delta = (series: string) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
    expect(delta('lpg_messages_published_total{result="stored"}')).toBe(1);
    expect(delta('lpg_messages_published_total{result="duplicate"}')).toBe(1);
    expect(delta('lpg_messages_delivered_total')).toBe(1);
    expect(delta('lpg_polls_total{outcome="messages"}')).toBe(1);
    expect(delta('lpg_delivery_latency_seconds_count')).toBe(1);
    expect(delta('lpg_delivery_latency_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(sample(after, 'lpg_held_polls')).toBe(sample(before, 'lpg_held_polls') ?? 0);
  });

  it('counts polls that time out, are superseded or aborted', async () => {
    const bob = nextUser();
    const token = await gw.tokenFor(bob);
    const before = await scrape();
    // POLL_MAX_PER_USER=1: the second poll supersedes the first, then times out after 1 s.
    const first = gw.request('/v1/poll?wait=5', { token });
    await waitFor(() => gw.engine.heldPollsOf(bob) === 1);
    const second = gw.request('/v1/poll?wait=1', { token });
    expect(await (await first).json()).toMatchObject({ superseded: true });
    expect(await (await second).json()).toMatchObject({ messages: [] });

    const controller = new AbortController();
    const aborted = gw.request('/v1/poll?wait=5', { token, signal: controller.signal }).catch(() => undefined);
    await waitFor(() => gw.engine.heldPollsOf(bob) === 1);
    controller.abort();
    await aborted;
    await waitFor(() => gw.engine.heldPollsOf(bob) === 0);
    await sleep(20);

    const after = await scrape();
    const delta = (outcome: string) => (sample(after, `lpg_polls_total{outcome="${outcome}"}`) ?? 0) - (sample(before, `lpg_polls_total{outcome="${outcome}"}`) ?? 0);
    expect(delta('superseded')).toBe(1);
    expect(delta('timeout')).toBe(1);
    expect(delta('aborted')).toBe(1);
  });
});

describe('engine observer', () => {
  const emptyStore = (overrides: Partial<MessageStore> = {}): MessageStore => ({
    insertMessage: async () => ({ id: 1, duplicate: false }),
    ackThrough: async () => 0,
    readPending: async (_userId, cursor) => ({ messages: [], cursor }),
    ping: async () => {},
    close: async () => {},
    ...overrides,
  });

  it('reports polls answered by a drain as drained and failed polls as error', async () => {
    const outcomes: PollOutcome[] = [];
    const bus = createMemoryBus();
    const engine = createEngine({ store: emptyStore(), bus }, { observer: { pollEnded: (outcome) => outcomes.push(outcome) } });
    const held = engine.holdPoll('bob', { cursor: 0, waitMs: 10_000, limit: 10 });
    await waitFor(() => engine.heldPollsOf('bob') === 1);
    engine.drain();
    expect(await held).toEqual({ messages: [], cursor: 0 });

    const failing = createEngine(
      { store: emptyStore({ readPending: async () => Promise.reject(new StoreUnavailableError(new Error('down'))) }), bus },
      { observer: { pollEnded: (outcome) => outcomes.push(outcome) } },
    );
    await expect(failing.holdPoll('bob', { cursor: 0, waitMs: 0, limit: 10 })).rejects.toThrow(StoreUnavailableError);
    expect(outcomes).toEqual(['drained', 'error']);
    await bus.close();
  });

  it('reports stored and duplicate publishes, batches included', async () => {
    const published: Array<[number, number]> = [];
    let calls = 0;
    const store = emptyStore({ insertMessage: async () => ({ id: 1, duplicate: calls++ % 2 === 1 }) });
    const bus = createMemoryBus();
    const engine = createEngine({ store, bus }, { observer: { published: (stored, duplicates) => published.push([stored, duplicates]) } });
    await engine.publish({ userId: 'bob', senderId: 'alice', body: '1' });
    await engine.publishMany([
      { userId: 'bob', senderId: 'alice', body: '2' },
      { userId: 'bob', senderId: 'alice', body: '3' },
      { userId: 'bob', senderId: 'alice', body: '4' },
    ]);
    expect(published).toEqual([
      [1, 0],
      [1, 2],
    ]);
    await bus.close();
  });
});
