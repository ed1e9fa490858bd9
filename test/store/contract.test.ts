import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdempotencyConflictError } from '../../src/errors.js';
import { topicKey, type Clock, type StoredMessage, type TopicPage } from '../../src/core/model.js';
import type { MessageStore, RetentionStore } from '../../src/store/types.js';
import { backendCases, userIds } from '../support/backends.js';
import { createFakeStore } from '../support/fake-store.js';

type ContractStore = MessageStore & RetentionStore;

/** Every MessageStore: the knex store on each backend, and the in-memory fake the unit tests use. */
const storeCases: Array<{ name: string; open: () => { create(clock: Clock): Promise<ContractStore>; cleanup(): Promise<void> } }> = [
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
  let store: ContractStore;
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
    // The repeat names the stored row's sequence number too, so its answer can carry it.
    expect(again).toEqual({ id: first.id, duplicate: true, seq: first.message!.seq });
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

  describe('topics', () => {
    let topicCount = 0;
    /** A topic key no other test of this file has used. */
    const nextTopic = () => topicKey(`contract.room:${++topicCount}`);

    async function publishTo(target: ContractStore, key: string, bodies: readonly string[], ttlSeconds?: number): Promise<StoredMessage[]> {
      const results = await target.insertMessages(bodies.map((body) => ({ userId: key, senderId: 'announcer', body, ...(ttlSeconds === undefined ? {} : { ttlSeconds }) })));
      return results.map((result) => result.message!);
    }

    /** What a page says, `earliest` included when set (toEqual treats a missing one as undefined). */
    function pageOf(page: TopicPage): { seqs: number[]; position: number; earliest: number | undefined } {
      return { seqs: page.messages.map((message) => message.seq), position: page.position, earliest: page.earliest };
    }

    async function read(target: ContractStore, key: string, after: number | null, limit = 100) {
      return pageOf(await target.readTopic({ key, after, limit }));
    }

    /** A store of its own: a trim walks every topic of a store, so it must not meet other tests' topics. */
    const freshStore = () => opened.create({ now: () => now });

    it('reads a topic after a position, in topic order, up to the limit; "from now" is its head', async () => {
      const key = nextTopic();
      const stored = await publishTo(store, key, ['"a"', '"b"', '"c"']);
      expect(stored.map((message) => message.seq)).toEqual([1, 2, 3]);
      const all = await store.readTopic({ key, after: 0, limit: 10 });
      expect(all.messages.map((m) => [m.id, m.userId, m.senderId, m.body, m.seq, m.createdAt])).toEqual(stored.map((m) => [m.id, key, 'announcer', m.body, m.seq, now]));
      expect(pageOf(all)).toEqual({ seqs: [1, 2, 3], position: 3, earliest: undefined });
      expect(await read(store, key, 1)).toEqual({ seqs: [2, 3], position: 3, earliest: undefined });
      expect(await read(store, key, 0, 2)).toEqual({ seqs: [1, 2], position: 2, earliest: undefined });
      expect(await read(store, key, 3)).toEqual({ seqs: [], position: 3, earliest: undefined });
      expect(await read(store, key, null)).toEqual({ seqs: [], position: 3, earliest: undefined });
      expect(await read(store, key, null, 0)).toEqual({ seqs: [], position: 3, earliest: undefined });
      await publishTo(store, key, ['"d"']);
      expect(await read(store, key, null)).toEqual({ seqs: [], position: 4, earliest: undefined });
      expect(await read(store, key, 3)).toEqual({ seqs: [4], position: 4, earliest: undefined });
      // A topic nobody published to: its head is 0, and position 0 is no reset.
      const silent = nextTopic();
      expect(await read(store, silent, null)).toEqual({ seqs: [], position: 0, earliest: undefined });
      expect(await read(store, silent, 0)).toEqual({ seqs: [], position: 0, earliest: undefined });
    });

    it('answers the topic reads of one tick each from its own topic and position', async () => {
      const [one, two, silent] = [nextTopic(), nextTopic(), nextTopic()];
      await publishTo(store, one, ['1', '2', '3']);
      await publishTo(store, two, ['1', '2']);
      const pages = await Promise.all([
        read(store, one, 0),
        read(store, one, 2),
        read(store, two, null),
        read(store, two, 0, 1),
        read(store, silent, 0),
        read(store, one, 9),
        read(store, one, 0),
      ]);
      expect(pages).toEqual([
        { seqs: [1, 2, 3], position: 3, earliest: undefined },
        { seqs: [3], position: 3, earliest: undefined },
        { seqs: [], position: 2, earliest: undefined },
        { seqs: [1], position: 1, earliest: undefined },
        { seqs: [], position: 0, earliest: undefined },
        { seqs: [1, 2, 3], position: 3, earliest: 1 },
        { seqs: [1, 2, 3], position: 3, earliest: undefined },
      ]);
    });

    it('skips expired messages; a page then ends at the last unexpired one', async () => {
      const key = nextTopic();
      await publishTo(store, key, ['"keeps"']);
      await publishTo(store, key, ['"expires"'], 60);
      await publishTo(store, key, ['"keeps too"']);
      expect((await read(store, key, 0)).seqs).toEqual([1, 2, 3]);
      now += 60_000; // exactly at expiry: gone
      expect(await read(store, key, 0)).toEqual({ seqs: [1, 3], position: 3, earliest: undefined });
      expect(await read(store, key, 1)).toEqual({ seqs: [3], position: 3, earliest: undefined });
      await publishTo(store, key, ['"last"'], 60);
      now += 60_000;
      expect(await read(store, key, 3)).toEqual({ seqs: [], position: 3, earliest: undefined });
      // The head still counts the expired message: a new reader starts after it.
      expect(await read(store, key, null)).toEqual({ seqs: [], position: 4, earliest: undefined });
    });

    it('tells a reader whose position lies above anything the topic issued (a reset database) where it continues', async () => {
      const key = nextTopic();
      await publishTo(store, key, ['1', '2']);
      expect(await read(store, key, 7)).toEqual({ seqs: [1, 2], position: 2, earliest: 1 });
      expect(await read(store, key, 7, 1)).toEqual({ seqs: [1], position: 1, earliest: 1 });
      expect(await read(store, nextTopic(), 5)).toEqual({ seqs: [], position: 0, earliest: 1 });
    });

    it('keeps a topic apart from the mailbox of the same name: a mailbox read, ack or summary never touches its rows', async () => {
      const name = nextUser();
      const key = topicKey(name);
      await store.insertMessage({ userId: name, senderId: 's', body: '"direct"' });
      await publishTo(store, key, ['"t1"', '"t2"', '"t3"']);
      expect((await store.readPending(name, 0, 10)).messages.map((m) => m.body)).toEqual(['"direct"']);
      expect(await store.mailboxSummary(name)).toEqual({ pending: 1, oldestAt: now });
      // The topic's sequence reached 3; the mailbox's did not: cursor 3 was never issued to it.
      expect(await store.ackThrough(name, 3)).toBe(0);
      expect(await store.ackThrough(name, 1)).toBe(1);
      await store.acknowledge(name, 1);
      expect(await read(store, key, 0)).toEqual({ seqs: [1, 2, 3], position: 3, earliest: undefined });
      expect(await store.mailboxSummary(name)).toEqual({ pending: 0, oldestAt: null });
    });

    it('treats the same sender and client id as one message across mailboxes and topics', async () => {
      const key = nextTopic();
      const bob = nextUser();
      await store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'x-1', body: '"same"' });
      await expect(store.insertMessage({ userId: key, senderId: 'alice', clientMessageId: 'x-1', body: '"same"' })).rejects.toBeInstanceOf(IdempotencyConflictError);
      const first = await store.insertMessage({ userId: key, senderId: 'alice', clientMessageId: 'x-2', body: '"t"' });
      expect(first).toMatchObject({ duplicate: false, message: { seq: 1, userId: key } });
      await expect(store.insertMessage({ userId: bob, senderId: 'alice', clientMessageId: 'x-2', body: '"t"' })).rejects.toMatchObject({ code: 'idempotency_conflict' });
      // A repeat to the topic is the stored row, with its sequence number in the topic.
      expect(await store.insertMessage({ userId: key, senderId: 'alice', clientMessageId: 'x-2', body: '"t"' })).toEqual({ id: first.id, duplicate: true, seq: 1 });
      // One publish naming both: all or nothing.
      await expect(
        store.insertMessages([
          { userId: bob, senderId: 'alice', clientMessageId: 'x-3', body: '"b"' },
          { userId: key, senderId: 'alice', clientMessageId: 'x-3', body: '"b"' },
        ]),
      ).rejects.toMatchObject({ code: 'idempotency_conflict' });
      expect((await store.readTopic({ key, after: 0, limit: 10 })).messages.map((m) => m.body)).toEqual(['"t"']);
      expect((await store.readPending(bob, 0, 10)).messages.map((m) => m.body)).toEqual(['"same"']);
    });

    it('trims a topic to its last historyMax messages, and tells a reader behind the trimmed point where it continues', async () => {
      const fresh = await freshStore();
      const key = nextTopic();
      await publishTo(fresh, key, ['1', '2', '3', '4', '5']);
      expect(await fresh.trimTopics(2, 0, 100)).toBe(3);
      expect(await fresh.trimTopics(2, 0, 100)).toBe(0);
      expect(await read(fresh, key, 0)).toEqual({ seqs: [4, 5], position: 5, earliest: 4 });
      expect(await read(fresh, key, 2)).toEqual({ seqs: [4, 5], position: 5, earliest: 4 });
      expect(await read(fresh, key, 2, 1)).toEqual({ seqs: [4], position: 4, earliest: 4 });
      // At the trimmed point a reader missed nothing: no reset.
      expect(await read(fresh, key, 3)).toEqual({ seqs: [4, 5], position: 5, earliest: undefined });
      expect(await read(fresh, key, 5)).toEqual({ seqs: [], position: 5, earliest: undefined });
      expect(await read(fresh, key, null)).toEqual({ seqs: [], position: 5, earliest: undefined });
      // The sequence goes on where it was, and the next trim moves the point on.
      expect((await publishTo(fresh, key, ['6']))[0]!.seq).toBe(6);
      expect(await fresh.trimTopics(2, 0, 100)).toBe(1);
      expect(await read(fresh, key, 3)).toEqual({ seqs: [5, 6], position: 6, earliest: 5 });
    });

    it('trims by age too, whichever of count and age keeps fewer', async () => {
      const fresh = await freshStore();
      const key = nextTopic();
      const start = now;
      await publishTo(fresh, key, ['1', '2', '3']);
      now += 1_000;
      await publishTo(fresh, key, ['4', '5']);
      // Age keeps fewer: the three created before start + 1 go.
      expect(await fresh.trimTopics(100, start + 1, 100)).toBe(3);
      expect(await read(fresh, key, 0)).toEqual({ seqs: [4, 5], position: 5, earliest: 4 });
      now += 1_000;
      await publishTo(fresh, key, ['6']);
      // Count keeps fewer.
      expect(await fresh.trimTopics(1, start + 1, 100)).toBe(2);
      expect(await read(fresh, key, 4)).toEqual({ seqs: [6], position: 6, earliest: 6 });
      // Everything old enough goes, the newest included: the head stays.
      expect(await fresh.trimTopics(10, now + 1, 100)).toBe(1);
      expect(await read(fresh, key, 0)).toEqual({ seqs: [], position: 6, earliest: 7 });
      expect(await read(fresh, key, 6)).toEqual({ seqs: [], position: 6, earliest: undefined });
      expect(await read(fresh, key, null)).toEqual({ seqs: [], position: 6, earliest: undefined });
    });

    it('deletes at most `limit` rows a call, the next calls resuming until every topic is trimmed', async () => {
      const fresh = await freshStore();
      const keys = [nextTopic(), nextTopic(), nextTopic()];
      for (const key of keys) await publishTo(fresh, key, ['1', '2', '3', '4']);
      const deleted: number[] = [];
      for (let call = 0; call < 10; call += 1) {
        deleted.push(await fresh.trimTopics(1, 0, 2));
        if (deleted.at(-1) === 0) break;
      }
      // Nine rows to go, two a call: no call stops short while there is work left.
      expect(deleted).toEqual([2, 2, 2, 2, 1, 0]);
      for (const key of keys) expect(await read(fresh, key, 0)).toEqual({ seqs: [4], position: 4, earliest: 4 });
    });

    it('walks every topic in one call when the limit allows, however many topics there are', async () => {
      const fresh = await freshStore();
      const keys = Array.from({ length: 205 }, () => nextTopic());
      await fresh.insertMessages(keys.flatMap((key) => [1, 2].map((n) => ({ userId: key, senderId: 'announcer', body: String(n) }))));
      expect(await fresh.trimTopics(1, 0, 1_000)).toBe(205);
      expect(await fresh.trimTopics(1, 0, 1_000)).toBe(0);
      for (const key of [keys[0]!, keys[150]!, keys[204]!]) expect(await read(fresh, key, 0)).toEqual({ seqs: [2], position: 2, earliest: 2 });
      for (const key of keys) await publishTo(fresh, key, ['3']);
      // Beyond one call's limit: the next call resumes.
      expect([await fresh.trimTopics(1, 0, 150), await fresh.trimTopics(1, 0, 150), await fresh.trimTopics(1, 0, 150)]).toEqual([150, 55, 0]);
    });

    it('raises the trimmed point before deleting: a reader never sees a gap while a trim is under way', async () => {
      const fresh = await freshStore();
      const key = nextTopic();
      await publishTo(fresh, key, ['1', '2', '3', '4', '5', '6']);
      // The cut is at 4; one row deleted so far, 2 to 4 still stored.
      expect(await fresh.trimTopics(2, 0, 1)).toBe(1);
      expect(await read(fresh, key, 1)).toEqual({ seqs: [5, 6], position: 6, earliest: 5 });
      expect(await read(fresh, key, 3)).toEqual({ seqs: [5, 6], position: 6, earliest: 5 });
      expect(await read(fresh, key, 4)).toEqual({ seqs: [5, 6], position: 6, earliest: undefined });
      expect(await fresh.trimTopics(2, 0, 100)).toBe(3);
      expect(await read(fresh, key, 1)).toEqual({ seqs: [5, 6], position: 6, earliest: 5 });
    });

    it('never trims a mailbox: unacked and acked mailbox rows stay, however old', async () => {
      const fresh = await freshStore();
      const user = nextUser();
      const key = nextTopic();
      const mailbox = await fresh.insertMessages([1, 2, 3, 4, 5].map((n) => ({ userId: user, senderId: 's', body: String(n) })));
      await publishTo(fresh, key, ['1', '2', '3']);
      expect(await fresh.ackThrough(user, 2)).toBe(2);
      now += 86_400_000;
      expect(await fresh.trimTopics(1, now + 1, 100)).toBe(3);
      expect(await fresh.trimTopics(1, now + 1, 100)).toBe(0);
      expect((await fresh.readPending(user, 2, 100)).messages.map((m) => m.seq)).toEqual([3, 4, 5]);
      expect((await fresh.messageStatus(mailbox[0]!.id))?.status).toBe('acked');
      expect(await read(fresh, key, 0)).toEqual({ seqs: [], position: 3, earliest: 4 });
    });

    it('refuses a historyMax or limit that is not a positive integer, deleting nothing', async () => {
      const fresh = await freshStore();
      const key = nextTopic();
      await publishTo(fresh, key, ['1', '2']);
      for (const [historyMax, limit] of [
        [0, 10],
        [1.5, 10],
        [5, 0],
        [5, -1],
      ] as const) {
        await expect(fresh.trimTopics(historyMax, 0, limit)).rejects.toBeInstanceOf(TypeError);
      }
      expect(await read(fresh, key, 0)).toEqual({ seqs: [1, 2], position: 2, earliest: undefined });
    });
  });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});
