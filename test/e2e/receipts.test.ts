import { describe, expect, it } from 'vitest';
import { createMemoryBus } from '../../src/bus/memory-bus.js';
import { createEngine } from '../../src/core/engine.js';
import { backendCases, useBackend } from '../support/backends.js';
import { useTestGateway } from '../support/gateway.js';
import { sleep, waitFor } from '../support/wait.js';

describe.each(backendCases('delivery receipts'))('delivery receipts on $name', ({ make }) => {
  const gw = useTestGateway(make);
  const { nextUser, publish } = gw;
  const poll = (user: string, cursor: number, wait = 0) => gw.poll(user, `wait=${wait}&cursor=${cursor}`);

  async function status(asUser: string, id: number): Promise<Response> {
    return gw.request(`/v1/messages/${id}`, { token: await gw.token(asUser) });
  }

  it('puts exactly one receipt in the sender’s mailbox when the recipient’s ack covers the message', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    const { id } = (await (await publish(alice, { to: bob, id: 'r1', body: 'hello', receipt: true })).json()) as { id: number };
    expect(await (await status(alice, id)).json()).toMatchObject({ id, to: bob, status: 'pending' });

    const got = await poll(bob, 0);
    expect(got.messages.map((m) => m.id)).toEqual([id]);
    await waitFor(async () => ((await (await status(alice, id)).json()) as { status: string }).status === 'delivered');
    // Nothing yet for alice: bob has received it but not acked it.
    expect((await poll(alice, 0)).receipts).toBeUndefined();

    const held = poll(alice, 0, 5);
    await poll(bob, got.cursor); // the next poll acks
    const answer = await held;
    expect(answer.messages).toEqual([]);
    expect(answer.receipts).toEqual([{ type: 'receipt', id, to: bob, status: 'acked', at: expect.stringMatching(/^\d{4}-/) }]);
    // The receipt waits in alice's mailbox, but her badge counts messages only.
    expect(await (await gw.request('/v1/mailbox', { token: await gw.token(alice) })).json()).toEqual({ pending: 0, oldestAt: null });
    const acked = (await (await status(alice, id)).json()) as { status: string; ackedAt: string };
    expect(acked.status).toBe('acked');
    expect(acked.ackedAt).toBe(answer.receipts![0]!.at);

    // Re-acks (a poll and an explicit ack with the same cursor) make no second receipt.
    await poll(bob, got.cursor);
    await gw.request('/v1/ack', { method: 'POST', token: await gw.token(bob), json: { cursor: got.cursor } });
    await sleep(150);
    expect((await poll(alice, answer.cursor)).receipts).toBeUndefined();
    const rows = await gw.knex('messages').where({ user_id: alice, sender_id: '' }).count({ n: '*' }).first();
    expect(Number(rows?.n)).toBe(1);
  });

  it('makes no receipt unless asked, and none for a message that expired before the ack', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    await publish(alice, { to: bob, body: 'no receipt wanted' });
    const expiring = (await (await publish(alice, { to: bob, body: 'short', ttl: 1, receipt: true })).json()) as { id: number };
    const got = await poll(bob, 0);
    expect(got.messages).toHaveLength(2);
    await sleep(1_100);
    await poll(bob, got.cursor);
    await sleep(150);
    expect((await poll(alice, 0)).receipts).toBeUndefined();
    expect(((await (await status(alice, expiring.id)).json()) as { status: string }).status).toBe('acked');
  });

  it('asks per item in a batch', async () => {
    const [alice, bob] = [nextUser(), nextUser()];
    const batch = (await (
      await publish(
        alice,
        {
          messages: [
            { to: bob, body: 1, receipt: true },
            { to: bob, body: 2 },
            { to: bob, body: 3, receipt: true },
          ],
        },
        '/v1/messages/batch',
      )
    ).json()) as { results: Array<{ id: number }> };
    const got = await poll(bob, 0);
    await poll(bob, got.cursor);
    await waitFor(async () => ((await poll(alice, 0)).receipts ?? []).length === 2);
    expect(((await poll(alice, 0)).receipts ?? []).map((r) => r.id)).toEqual([batch.results[0]!.id, batch.results[2]!.id]);
  });

  it('tells only the sender about a message: 403 for anyone else, 404 for no such message', async () => {
    const [alice, bob, mallory] = [nextUser(), nextUser(), nextUser()];
    const { id } = (await (await publish(alice, { to: bob, body: 'x', ttl: 1 })).json()) as { id: number };
    expect((await status(mallory, id)).status).toBe(403);
    expect(await (await status(bob, id)).json()).toMatchObject({ error: { code: 'forbidden' } });
    expect((await status(alice, 999_999_999)).status).toBe(404);
    expect((await status(alice, 0)).status).toBe(400);
    await sleep(1_100);
    expect(((await (await status(alice, id)).json()) as { status: string }).status).toBe('expired');
  });
});

describe.each(backendCases('receipts after a crash'))('receipts made after a crash between ack and receipt on $name', ({ make }) => {
  const backend = useBackend(make);

  it('has the next engine make the due receipt, exactly once', async () => {
    const store = await backend.createStore();
    const { id } = await store.insertMessage({ userId: 'crash-bob', senderId: 'crash-alice', body: '"x"', receipt: true });
    // The ack landed, the process died before making the receipt.
    expect(await store.ackThrough('crash-bob', 1)).toBe(1);
    const engines = [1, 2].map(() => createEngine({ store, bus: createMemoryBus() }, { receiptSweepMs: 50 }));
    await waitFor(async () => (await store.readPending('crash-alice', 0, 10)).messages.length > 0);
    await sleep(200);
    const receipts = (await store.readPending('crash-alice', 0, 10)).messages;
    expect(receipts.map((m) => JSON.parse(m.body))).toEqual([expect.objectContaining({ type: 'receipt', id, to: 'crash-bob' })]);
    for (const engine of engines) engine.drain();
  });
});
