import { describe, expect, it } from 'vitest';
import { createMemoryBus } from '../../src/bus/memory-bus.js';
import { createEngine, type PollOutcome } from '../../src/core/engine.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { MessageDraft } from '../../src/core/model.js';
import type { MessageStore } from '../../src/store/types.js';
import { createFakeStore } from '../support/fake-store.js';
import { backendCases } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { sleep, waitFor } from '../support/wait.js';

/** The value of one sample line (`name{labels} value`) in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

const METRICS_TOKEN = 'metrics-token-0123456789';

describe.each(backendCases('metrics'))('GET /metrics on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5', POLL_MAX_PER_USER: '1', METRICS_TOKEN, PRESENCE_GRACE_S: '3600' });
  const { nextUser, publish, poll } = gw;

  async function scrape(): Promise<string> {
    const response = await gw.request('/metrics', { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return response.text();
  }

  it('refuses a scrape without the metrics token or with a wrong one', async () => {
    const missing = await gw.request('/metrics');
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ error: { code: 'missing_token', message: expect.any(String) } });
    const wrong = await gw.request('/metrics', { headers: { Authorization: 'Bearer not-the-metrics-token' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { code: 'invalid_token' } });
    // A user's JWT is not the metrics token either.
    const jwt = await gw.request('/metrics', { token: await gw.token(nextUser()) });
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
    const held = poll(bob, 'wait=5');
    await waitFor(() => gw.gateway.engine.heldPollsOf(bob) === 1);
    expect(sample(await scrape(), 'lpg_held_polls')).toBe((sample(before, 'lpg_held_polls') ?? 0) + 1);
    // Bob's anonymous client is present for his user (a grace of an hour: nobody leaves meanwhile).
    expect(sample(await scrape(), 'lpg_presence_entries')).toBe((sample(before, 'lpg_presence_entries') ?? 0) + 1);

    expect((await publish(alice, { to: bob, id: 'm1', body: 1 })).status).toBe(201);
    expect((await publish(alice, { to: bob, id: 'm1', body: 1 })).status).toBe(200);
    expect((await held).messages).toHaveLength(1);

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
    const { engine } = gw.gateway;
    const before = await scrape();
    // POLL_MAX_PER_USER=1: the second poll supersedes the first, then times out after 1 s.
    const first = poll(bob, 'wait=5');
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    const second = poll(bob, 'wait=1');
    expect(await first).toMatchObject({ superseded: true });
    expect(await second).toMatchObject({ messages: [] });

    const controller = new AbortController();
    const aborted = gw.request('/v1/poll?wait=5', { token: await gw.token(bob), signal: controller.signal }).catch(() => undefined);
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    controller.abort();
    await aborted;
    await waitFor(() => engine.heldPollsOf(bob) === 0);
    await sleep(20);

    const after = await scrape();
    const delta = (outcome: string) => (sample(after, `lpg_polls_total{outcome="${outcome}"}`) ?? 0) - (sample(before, `lpg_polls_total{outcome="${outcome}"}`) ?? 0);
    expect(delta('superseded')).toBe(1);
    expect(delta('timeout')).toBe(1);
    expect(delta('aborted')).toBe(1);
  });
});

describe('engine observer', () => {
  const emptyStore = (overrides: Partial<MessageStore> = {}): MessageStore => ({ ...createFakeStore(), ...overrides });

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
    const fake = createFakeStore();
    // Every second publish is a repeat: the first stores, the second finds it.
    const asRepeats = (draft: MessageDraft): MessageDraft => {
      const key = `m-${Math.floor(calls++ / 2)}`;
      return { ...draft, clientMessageId: key, body: JSON.stringify(key) };
    };
    const store = emptyStore({
      insertMessage: (draft) => fake.insertMessage(asRepeats(draft)),
      insertMessages: (drafts) => fake.insertMessages(drafts.map(asRepeats)),
    });
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
