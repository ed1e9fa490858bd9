import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyConflictError } from '../src/errors.js';
import type { MessageStore } from '../src/store/types.js';
import type { Knex } from 'knex';
import { backendCases, type Backend } from './support/backends.js';

describe.each(backendCases('store contract'))('MessageStore contract on $name', ({ make }) => {
  let backend: Backend;
  let store: MessageStore & { knex: Knex };
  let now = 1_700_000_000_000;
  let userSeq = 0;
  const nextUser = () => `user-${++userSeq}`;

  beforeAll(async () => {
    backend = make();
    store = await backend.createStore({ now: () => now });
  });
  afterAll(async () => {
    await backend.cleanup();
  });

  async function statusOf(id: number): Promise<string> {
    const row = await store.knex('messages').where({ id }).first('status');
    return row.status;
  }

  it('stores a message and delivers it once pending, in id order, with the clock time', async () => {
    const bob = nextUser();
    const first = await store.insertMessage({ userId: bob, senderId: 'alice', body: '{"n":1}' });
    const second = await store.insertMessage({ userId: bob, senderId: 'carol', body: '"two"' });
    expect(first.duplicate).toBe(false);
    expect(second.id).toBeGreaterThan(first.id);
    const batch = await store.deliverPending(bob, 0, 100);
    expect(batch.messages.map((m) => [m.id, m.senderId, m.body, m.createdAt])).toEqual([
      [first.id, 'alice', '{"n":1}', now],
      [second.id, 'carol', '"two"', now],
    ]);
    expect(batch.cursor).toBe(second.id);
    expect(await statusOf(first.id)).toBe('delivered');
  });

  it('never returns another user’s messages', async () => {
    const bob = nextUser();
    const dave = nextUser();
    await store.insertMessage({ userId: dave, senderId: 'alice', body: '1' });
    expect((await store.deliverPending(bob, 0, 100)).messages).toEqual([]);
  });

  it('treats the same (sender, client id) as a duplicate and stores nothing twice', async () => {
    const bob = nextUser();
    const draft = { userId: bob, senderId: 'alice', clientMessageId: 'm-1', body: '"hello"' };
    const first = await store.insertMessage(draft);
    const again = await store.insertMessage(draft);
    expect(again).toEqual({ id: first.id, duplicate: true });
    // Same client id from a different sender is a different message.
    const other = await store.insertMessage({ ...draft, senderId: 'mallory' });
    expect(other.duplicate).toBe(false);
    const rows = await store.knex('messages').where({ user_id: bob }).count({ n: '*' }).first();
    expect(Number(rows?.n)).toBe(2);
  });

  it('stores one row when identical publishes race', async () => {
    const bob = nextUser();
    const draft = { userId: bob, senderId: 'alice', clientMessageId: 'race-1', body: '"x"' };
    const results = await Promise.all(Array.from({ length: 12 }, () => store.insertMessage(draft)));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    const rows = await store.knex('messages').where({ user_id: bob }).count({ n: '*' }).first();
    expect(Number(rows?.n)).toBe(1);
  });

  it('rejects a reused client id with a different body or recipient', async () => {
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'k', body: '"a"' });
    await expect(store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'k', body: '"b"' })).rejects.toBeInstanceOf(
      IdempotencyConflictError,
    );
    await expect(
      store.insertMessage({ userId: nextUser(), senderId: 'alice', clientMessageId: 'k', body: '"a"' }),
    ).rejects.toMatchObject({ code: 'idempotency_conflict', status: 409 });
  });

  it('redelivers until acked, and acks only through the cursor sent back', async () => {
    const bob = nextUser();
    const a = await store.insertMessage({ userId: bob, senderId: 's', body: '1' });
    const first = await store.deliverPending(bob, 0, 100);
    // Response lost: the client polls again with its old cursor and gets the same message.
    const again = await store.deliverPending(bob, 0, 100);
    expect(again.messages.map((m) => m.id)).toEqual([a.id]);
    expect(again.cursor).toBeGreaterThan(first.cursor);
    expect(await store.ackThrough(bob, 0)).toBe(0);
    const acked = await store.ackThrough(bob, again.cursor);
    expect(acked).toBe(1);
    expect(await statusOf(a.id)).toBe('acked');
    expect((await store.deliverPending(bob, again.cursor, 100)).messages).toEqual([]);
  });

  it('respects the limit and continues after the cursor', async () => {
    const bob = nextUser();
    const ids: number[] = [];
    for (let i = 0; i < 5; i += 1) ids.push((await store.insertMessage({ userId: bob, senderId: 's', body: String(i) })).id);
    const page1 = await store.deliverPending(bob, 0, 2);
    expect(page1.messages.map((m) => m.id)).toEqual(ids.slice(0, 2));
    await store.ackThrough(bob, page1.cursor);
    const page2 = await store.deliverPending(bob, page1.cursor, 2);
    expect(page2.messages.map((m) => m.id)).toEqual(ids.slice(2, 4));
    await store.ackThrough(bob, page2.cursor);
    const page3 = await store.deliverPending(bob, page2.cursor, 2);
    expect(page3.messages.map((m) => m.id)).toEqual(ids.slice(4));
  });

  it('delivers a lower id that commits after a higher id was delivered and acked', async () => {
    const bob = nextUser();
    // Reserve two ids, then make the higher one visible first (what two concurrent transactions
    // committing out of order look like to a reader).
    const base = (await store.insertMessage({ userId: 'reserve', senderId: 's', body: '0' })).id;
    const lateId = base + 100;
    const earlyId = base + 101;
    await store.knex('messages').insert({ id: earlyId, user_id: bob, sender_id: 's', body: '"eleven"', status: 'pending', created_at: now });
    const seen = await store.deliverPending(bob, 0, 100);
    expect(seen.messages.map((m) => m.id)).toEqual([earlyId]);
    expect(await store.ackThrough(bob, seen.cursor)).toBe(1);

    await store.knex('messages').insert({ id: lateId, user_id: bob, sender_id: 's', body: '"ten"', status: 'pending', created_at: now });
    // The cumulative cursor covers lateId numerically, but lateId was never sent: it must not be acked.
    expect(await store.ackThrough(bob, seen.cursor)).toBe(0);
    const late = await store.deliverPending(bob, seen.cursor, 100);
    expect(late.messages.map((m) => m.id)).toEqual([lateId]);
    expect(late.cursor).toBeGreaterThan(seen.cursor);

    // The response carrying the late message is lost: re-sending the old cursor must not ack it.
    expect(await store.ackThrough(bob, seen.cursor)).toBe(0);
    const redelivered = await store.deliverPending(bob, seen.cursor, 100);
    expect(redelivered.messages.map((m) => m.id)).toEqual([lateId]);
    expect(await store.ackThrough(bob, redelivered.cursor)).toBe(1);
    expect(await statusOf(lateId)).toBe('acked');
  });

  it('gives every non-empty response a cursor above all earlier stamps', async () => {
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 's', body: '1' });
    const first = await store.deliverPending(bob, 0, 100);
    const second = await store.deliverPending(bob, 0, 100);
    expect(second.cursor).toBeGreaterThan(first.cursor);
    // Acking the first (older) cursor must not ack what the second response re-stamped.
    expect(await store.ackThrough(bob, first.cursor)).toBe(0);
    expect(await store.ackThrough(bob, second.cursor)).toBe(1);
  });

  it('returns the same cursor and no messages when nothing is pending', async () => {
    const bob = nextUser();
    expect(await store.deliverPending(bob, 42, 100)).toEqual({ messages: [], cursor: 42 });
  });

  it('keeps one sender’s messages in send order', async () => {
    const bob = nextUser();
    for (let i = 0; i < 20; i += 1) await store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: `o-${i}`, body: String(i) });
    const batch = await store.deliverPending(bob, 0, 100);
    expect(batch.messages.map((m) => Number(m.body))).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});
