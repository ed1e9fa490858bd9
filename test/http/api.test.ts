import { describe, expect, it } from 'vitest';
import { backendCases } from '../support/backends.js';
import { waitFor } from '../support/wait.js';
import { useTestGateway } from '../support/gateway.js';

describe.each(backendCases('HTTP API'))('HTTP API v1 on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '10', POLL_MAX_PER_USER: '1' });
  const { nextUser, publish, poll } = gw;

  it('publishes, long-polls, acks by cursor, and does not redeliver after the ack', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    const held = gw.request('/v1/poll?wait=5', { token: await gw.token(bob) });
    await waitFor(() => gw.gateway.engine.heldPollsOf(bob) === 1);
    const published = await publish(alice, { to: bob, id: 'c-1', body: { text: 'hi', n: [1, 2] } });
    expect(published.status).toBe(201);
    const { id } = (await published.json()) as { id: number };

    const response = await held;
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store, no-cache, must-revalidate');
    expect(response.headers.get('x-poll-wait-max')).toBe('10');
    const body = (await response.json()) as { messages: Array<Record<string, unknown>>; cursor: number };
    expect(body.messages).toEqual([{ id, from: alice, body: { text: 'hi', n: [1, 2] }, createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) }]);
    expect(body.cursor).toBeGreaterThanOrEqual(id);

    expect(await poll(bob, `cursor=${body.cursor}`)).toEqual({ messages: [], cursor: body.cursor });
  });

  it('answers a duplicate publish with the same id and duplicate: true, storing one row', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    const first = await publish(alice, { to: bob, id: 'dup', body: 'x' });
    const second = await publish(alice, { to: bob, id: 'dup', body: 'x' });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    const [a, b] = [await first.json(), await second.json()];
    expect(b).toEqual({ id: (a as { id: number }).id, duplicate: true });
    const rows = await gw.knex('messages').where({ user_id: bob }).count({ n: '*' }).first();
    expect(Number(rows?.n)).toBe(1);
    const conflict = await publish(alice, { to: bob, id: 'dup', body: 'changed' });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ error: { code: 'idempotency_conflict' } });
  });

  it('stores one row when identical publishes race over HTTP', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    await gw.token(alice); // minted once, before the race
    const responses = await Promise.all(Array.from({ length: 10 }, () => publish(alice, { to: bob, id: 'race', body: 1 })));
    const bodies = (await Promise.all(responses.map((r) => r.json()))) as Array<{ id: number; duplicate: boolean }>;
    expect(new Set(bodies.map((b) => b.id)).size).toBe(1);
    expect(bodies.filter((b) => !b.duplicate)).toHaveLength(1);
  });

  it('redelivers an unacked message (lost response) and acks through POST /v1/ack', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    await publish(alice, { to: bob, body: 'once' });
    const lost = await poll(bob);
    const again = await poll(bob, 'cursor=0');
    expect(again.messages).toEqual(lost.messages);
    const ack = await gw.request('/v1/ack', { method: 'POST', token: await gw.token(bob), json: { cursor: again.cursor } });
    expect(await ack.json()).toEqual({ acked: 1, cursor: again.cursor });
    expect((await poll(bob, `cursor=${again.cursor}`)).messages).toEqual([]);
  });

  it('holds an empty long poll for `wait` seconds, then answers 200 with the same cursor', async () => {
    const bob = nextUser();
    const started = Date.now();
    const response = await gw.request('/v1/poll?wait=1&cursor=5', { token: await gw.token(bob) });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ messages: [], cursor: 5 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('accepts the token as ?access_token= for clients that cannot set headers', async () => {
    const bob = nextUser();
    const response = await gw.request(`/v1/poll?wait=0&access_token=${await gw.token(bob)}&_=123`);
    expect(response.status).toBe(200);
  });

  it('publishes a batch for many recipients, each delivered to its own mailbox', async () => {
    const [alice, bob, carol] = [nextUser(), nextUser(), nextUser()];
    const response = await publish(
      alice,
      { messages: [{ to: bob, id: 'b1', body: 'for bob' }, { to: carol, id: 'c1', body: 'for carol' }] },
      '/v1/messages/batch',
    );
    expect(response.status).toBe(201);
    const { results } = (await response.json()) as { results: Array<{ id: number; duplicate: boolean }> };
    expect(results).toHaveLength(2);
    for (const [user, text] of [[bob, 'for bob'], [carol, 'for carol']] as const) {
      expect((await poll(user)).messages.map((m) => m.body)).toEqual([text]);
    }
  });

  it('releases the held poll when the client disconnects', async () => {
    const bob = nextUser();
    const { engine } = gw.gateway;
    const controller = new AbortController();
    const held = gw.request('/v1/poll?wait=10', { token: await gw.token(bob), signal: controller.signal }).catch((e: unknown) => e);
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    controller.abort();
    await held;
    await waitFor(() => engine.heldPollsOf(bob) === 0, 1_000);
    expect(engine.heldPollsOf(bob)).toBe(0);
  });

  it('answers the older of two concurrent polls from one user empty with superseded: true', async () => {
    const bob = nextUser();
    const older = poll(bob, 'wait=5');
    await waitFor(() => gw.gateway.engine.heldPollsOf(bob) === 1);
    const newer = poll(bob, 'wait=1');
    expect(await older).toEqual({ messages: [], cursor: 0, superseded: true });
    expect(await newer).toEqual({ messages: [], cursor: 0 });
  });

  it('reports liveness and readiness', async () => {
    expect(await (await gw.request('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await gw.request('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { store: 'up', bus: 'up' } });
  });
});
