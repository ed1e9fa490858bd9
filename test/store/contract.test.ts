import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyConflictError } from '../../src/errors.js';
import type { Clock } from '../../src/core/model.js';
import type { MessageStore } from '../../src/store/types.js';
import { backendCases, userIds } from '../support/backends.js';
import { createFakeStore } from '../support/fake-store.js';

/** Every MessageStore: the knex store on each backend, and the in-memory fake the unit tests use. */
const storeCases: Array<{ name: string; open: () => { create(clock: Clock): Promise<MessageStore>; cleanup(): Promise<void> } }> = [
  ...backendCases('store contract').map(({ name, make }) => ({
    name,
    open: () => {
      const backend = make();
      return { create: (clock: Clock) => backend.createStore(clock), cleanup: () => backend.cleanup() };
    },
  })),
  { name: 'in-memory fake', open: () => ({ create: async (clock: Clock) => createFakeStore({ clock }), cleanup: async () => {} }) },
];

describe.each(storeCases)('MessageStore contract on $name', ({ open }) => {
  let opened: ReturnType<typeof open>;
  let store: MessageStore;
  let now = 1_700_000_000_000;
  const nextUser = userIds('contract');

  beforeAll(async () => {
    opened = open();
    store = await opened.create({ now: () => now });
  });
  afterAll(async () => {
    await opened.cleanup();
  });

  async function statusOf(id: number): Promise<string> {
    return (await store.messageStatus(id))!.status;
  }

  /** The user's stored, unacked, unexpired messages. */
  async function storedCount(userId: string): Promise<number> {
    return (await store.readPending(userId, 0, 1_000)).messages.length;
  }

  it('stores a message and reads it back in mailbox order, with the clock time, writing nothing', async () => {
    const bob = nextUser();
    const first = await store.insertMessage({ userId: bob, senderId: 'alice', body: '{"n":1}' });
    const second = await store.insertMessage({ userId: bob, senderId: 'carol', body: '"two"' });
    expect(first.duplicate).toBe(false);
    expect(second.id).toBeGreaterThan(first.id);
    const batch = await store.readPending(bob, 0, 100);
    expect(batch.messages.map((m) => [m.id, m.senderId, m.body, m.createdAt])).toEqual([
      [first.id, 'alice', '{"n":1}', now],
      [second.id, 'carol', '"two"', now],
    ]);
    // The cursor is the last sequence number of the mailbox the client received.
    expect(batch.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect(batch.cursor).toBe(2);
    expect(await statusOf(first.id)).toBe('pending');
  });

  it('never returns another user’s messages', async () => {
    const bob = nextUser();
    const dave = nextUser();
    await store.insertMessage({ userId: dave, senderId: 'alice', body: '1' });
    expect((await store.readPending(bob, 0, 100)).messages).toEqual([]);
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
    expect(await storedCount(bob)).toBe(2);
  });

  it('stores one row when identical publishes race', async () => {
    const bob = nextUser();
    const draft = { userId: bob, senderId: 'alice', clientMessageId: 'race-1', body: '"x"' };
    const results = await Promise.all(Array.from({ length: 12 }, () => store.insertMessage(draft)));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
    expect(await storedCount(bob)).toBe(1);
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
    const first = await store.readPending(bob, 0, 100);
    // Response lost: the client polls again with its old cursor and gets the same message.
    const again = await store.readPending(bob, 0, 100);
    expect(again).toEqual(first);
    expect(await store.ackThrough(bob, 0)).toBe(0);
    expect(await store.ackThrough(bob, again.cursor)).toBe(1);
    expect(await statusOf(a.id)).toBe('acked');
    expect((await store.readPending(bob, again.cursor, 100)).messages).toEqual([]);
    // Acking again is a no-op.
    expect(await store.ackThrough(bob, again.cursor)).toBe(0);
  });

  it('respects the limit and continues after the cursor, also before the ack lands', async () => {
    const bob = nextUser();
    const ids: number[] = [];
    for (let i = 0; i < 5; i += 1) ids.push((await store.insertMessage({ userId: bob, senderId: 's', body: String(i) })).id);
    const page1 = await store.readPending(bob, 0, 2);
    expect(page1.messages.map((m) => m.id)).toEqual(ids.slice(0, 2));
    const page2 = await store.readPending(bob, page1.cursor, 2);
    expect(page2.messages.map((m) => m.id)).toEqual(ids.slice(2, 4));
    expect(await store.ackThrough(bob, page2.cursor)).toBe(4);
    const page3 = await store.readPending(bob, page2.cursor, 2);
    expect(page3.messages.map((m) => m.id)).toEqual(ids.slice(4));
  });

  it('acks nothing beyond a limited response whose successor was lost', async () => {
    // The one-process hole of the stamp design: limit reached, then a lost response, then the
    // next response's cursor must not cover rows that were beyond the limit of what was received.
    const bob = nextUser();
    for (let i = 0; i < 6; i += 1) await store.insertMessage({ userId: bob, senderId: 's', body: String(i) });
    const received = await store.readPending(bob, 0, 2);
    await store.readPending(bob, received.cursor, 2); // lost on the way
    expect(await store.ackThrough(bob, received.cursor)).toBe(2);
    const next = await store.readPending(bob, received.cursor, 2);
    expect(next.messages.map((m) => Number(m.body))).toEqual([2, 3]);
    expect(await store.ackThrough(bob, next.cursor)).toBe(2);
    expect((await store.readPending(bob, next.cursor, 100)).messages.map((m) => Number(m.body))).toEqual([4, 5]);
  });

  it('acks nothing for a cursor the mailbox never issued, and reads such a cursor from the start', async () => {
    // A database that was reset under clients holding cursors, or a forged value.
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 's', body: '"a"' });
    await store.insertMessage({ userId: bob, senderId: 's', body: '"b"' });
    expect(await store.ackThrough(bob, 57)).toBe(0);
    const batch = await store.readPending(bob, 57, 100);
    expect(batch.messages.map((m) => m.body)).toEqual(['"a"', '"b"']);
    expect(batch.cursor).toBe(2);
    // A user with no mailbox at all.
    expect(await store.ackThrough(nextUser(), 3)).toBe(0);
  });

  it('answers concurrent readers of one cursor with prefixes, so either answer acks only what it holds', async () => {
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 's', body: '1' });
    const [one, two] = await Promise.all([store.readPending(bob, 0, 3), store.readPending(bob, 0, 3)]);
    await store.insertMessage({ userId: bob, senderId: 's', body: '2' });
    const three = await store.readPending(bob, 0, 3);
    for (const batch of [one, two, three]) expect(batch.messages.map((m) => m.seq)).toEqual(Array.from({ length: batch.cursor }, (_, i) => i + 1));
    // The client kept the shorter answer: its cursor must leave the second message unacked.
    expect(await store.ackThrough(bob, one.cursor)).toBe(1);
    expect((await store.readPending(bob, one.cursor, 3)).messages.map((m) => m.body)).toEqual(['2']);
  });

  it('returns the same cursor and no messages when nothing is pending', async () => {
    const bob = nextUser();
    expect(await store.readPending(bob, 42, 100)).toEqual({ messages: [], cursor: 42 });
  });

  it('gives each mailbox its own sequence, in publish order, across batches and single publishes', async () => {
    const [bob, dave] = [nextUser(), nextUser()];
    await store.insertMessage({ userId: bob, senderId: 's', body: '"b1"' });
    await store.insertMessages([
      { userId: dave, senderId: 's', body: '"d1"' },
      { userId: bob, senderId: 's', body: '"b2"' },
      { userId: dave, senderId: 's', body: '"d2"' },
    ]);
    await Promise.all([store.insertMessage({ userId: bob, senderId: 'x', body: '"b3"' }), store.insertMessage({ userId: dave, senderId: 'x', body: '"d3"' })]);
    const bobs = await store.readPending(bob, 0, 100);
    const daves = await store.readPending(dave, 0, 100);
    expect(bobs.messages.map((m) => [m.seq, m.body])).toEqual([[1, '"b1"'], [2, '"b2"'], [3, '"b3"']]);
    expect(daves.messages.map((m) => [m.seq, m.body])).toEqual([[1, '"d1"'], [2, '"d2"'], [3, '"d3"']]);
  });

  it('stores concurrent publishes of one tick with distinct ids and sequences, a repeat among them stored once', async () => {
    const bob = nextUser();
    const drafts = Array.from({ length: 30 }, (_, i) => ({ userId: bob, senderId: `s${i % 3}`, clientMessageId: `c-${i}`, body: String(i) }));
    const results = await Promise.all([...drafts.map((d) => store.insertMessage(d)), store.insertMessage(drafts[4]!)]);
    expect(new Set(results.slice(0, 30).map((r) => r.id)).size).toBe(30);
    expect(results[30]!.id).toBe(results[4]!.id);
    expect(results.filter((r) => r.duplicate)).toHaveLength(1);
    const batch = await store.readPending(bob, 0, 100);
    expect(batch.messages.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(new Set(batch.messages.map((m) => m.id))).toEqual(new Set(results.map((r) => r.id)));
  });

  it('fails only the conflicting publish of a tick, storing the others', async () => {
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'taken', body: '"first"' });
    const [ok, conflict, batch] = await Promise.allSettled([
      store.insertMessage({ userId: bob, senderId: 'alice', body: '"fine"' }),
      store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'taken', body: '"other"' }),
      store.insertMessages([
        { userId: bob, senderId: 'carol', body: '"kept-1"' },
        { userId: bob, senderId: 'carol', body: '"kept-2"' },
      ]),
    ]);
    expect(ok.status).toBe('fulfilled');
    expect(conflict).toMatchObject({ status: 'rejected', reason: { code: 'idempotency_conflict' } });
    expect(batch.status).toBe('fulfilled');
    const bodies = (await store.readPending(bob, 0, 100)).messages.map((m) => m.body);
    expect(bodies.sort()).toEqual(['"fine"', '"first"', '"kept-1"', '"kept-2"']);
  });

  it('stores nothing of a batch whose last item conflicts', async () => {
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'k9', body: '"orig"' });
    await expect(
      store.insertMessages([
        { userId: bob, senderId: 'alice', clientMessageId: 'k10', body: '"new"' },
        { userId: bob, senderId: 'alice', clientMessageId: 'k9', body: '"changed"' },
      ]),
    ).rejects.toMatchObject({ code: 'idempotency_conflict' });
    expect((await store.readPending(bob, 0, 100)).messages.map((m) => m.body)).toEqual(['"orig"']);
  });

  it('keeps one sender’s messages in send order', async () => {
    const bob = nextUser();
    for (let i = 0; i < 20; i += 1) await store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: `o-${i}`, body: String(i) });
    const batch = await store.readPending(bob, 0, 100);
    expect(batch.messages.map((m) => Number(m.body))).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('never reads a message once it expires, and stops counting it in the summary', async () => {
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 's', body: '"keeps"' });
    const { message } = await store.insertMessage({ userId: bob, senderId: 's', body: '"expires"', ttlSeconds: 60 });
    expect(message?.expiresAt).toBe(now + 60_000);
    now += 30_000;
    expect((await store.readPending(bob, 0, 10)).messages.map((m) => m.body)).toEqual(['"keeps"', '"expires"']);
    expect(await store.mailboxSummary(bob)).toEqual({ pending: 2, oldestAt: now - 30_000 });
    now += 30_000; // exactly at expiry: gone
    expect((await store.readPending(bob, 0, 10)).messages.map((m) => m.body)).toEqual(['"keeps"']);
    expect((await store.readPending(bob, 1, 10)).messages).toEqual([]);
    expect((await store.mailboxSummary(bob)).pending).toBe(1);
  });

  it('summarises a mailbox: unacked messages and the oldest one’s time', async () => {
    const bob = nextUser();
    expect(await store.mailboxSummary(bob)).toEqual({ pending: 0, oldestAt: null });
    const started = now;
    await store.insertMessage({ userId: bob, senderId: 's', body: '1' });
    now += 1_000;
    await store.insertMessage({ userId: bob, senderId: 's', body: '2' });
    await store.insertMessage({ userId: nextUser(), senderId: 's', body: 'elsewhere' });
    expect(await store.mailboxSummary(bob)).toEqual({ pending: 2, oldestAt: started });
    await store.ackThrough(bob, 1);
    expect(await store.mailboxSummary(bob)).toEqual({ pending: 1, oldestAt: started + 1_000 });
  });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});
