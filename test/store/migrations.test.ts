import type { Knex } from 'knex';
import { describe, expect, it } from 'vitest';
import { LEGACY_CURSOR_MARGIN } from '../../db/migrations/003_mailbox_sequence.js';
import { topicKey } from '../../src/core/model.js';
import { createKnexStore } from '../../src/store/knex/index.js';
import { migrationSource } from '../../src/store/migrations.js';
import { backendCases, useBackend } from '../support/backends.js';

/**
 * A database written by the stamp-based delivery model (migrations 001-002), upgraded in place by
 * the store's own start-up migration, with clients that still hold cursors of the old kind.
 */
describe.each(backendCases('upgrade of a stamp-model database'))('in-place upgrade to mailbox sequences on $name', ({ make }) => {
  const backend = useBackend(make);

  async function oldDatabase() {
    const knex = await backend.createEmptyDatabase();
    await knex.migrate.up({ migrationSource }); // 001
    await knex.migrate.up({ migrationSource }); // 002
    expect(await knex.schema.hasColumn('messages', 'seq')).toBe(false);
    return knex;
  }

  it('numbers unacked rows per mailbox in id order, above every old cursor, and keeps acked rows acked', async () => {
    const knex = await oldDatabase();
    const row = (user: string, body: string, status: string, stamp: number | null) => ({
      user_id: user,
      sender_id: 's',
      body,
      status,
      delivery_cursor: stamp,
      created_at: 1,
      ...(status === 'acked' ? { acked_at: 2 } : {}),
    });
    // bob: two acked, one delivered in a response whose cursor never came back (a stamp far
    // above the ids, as a chain of redeliveries makes it), one never sent. carol: one pending.
    await knex('messages').insert([
      row('bob', '"a1"', 'acked', 2),
      row('bob', '"a2"', 'acked', 2),
      row('carol', '"c1"', 'pending', null),
      row('bob', '"d1"', 'delivered', 90),
      row('bob', '"p1"', 'pending', null),
    ]);
    // A purged message had the highest id the database ever handed out: only the auto-increment
    // counter remembers it.
    await knex('messages').insert({ id: 500, ...row('dave', '"gone"', 'acked', 3) });
    await knex('messages').where({ id: 500 }).del();

    const store = await createKnexStore({ knex });
    const floor = Number((await knex('delivery_settings').where({ name: 'seq_floor' }).first('value')).value);
    expect(floor).toBe(500 + LEGACY_CURSOR_MARGIN);

    // Old cursors (stamps), even the highest ever issued, ack nothing of what is unacked.
    for (const oldCursor of [2, 90, 500]) expect(await store.ackThrough('bob', oldCursor)).toBe(0);
    const bob = await store.readPending('bob', 90, 100);
    expect(bob.messages.map((m) => [m.body, m.seq])).toEqual([
      ['"d1"', floor + 1],
      ['"p1"', floor + 2],
    ]);
    expect((await store.readPending('carol', 0, 100)).messages.map((m) => [m.body, m.seq])).toEqual([['"c1"', floor + 1]]);
    expect(await knex('messages').where({ status: 'delivered' }).count({ n: '*' }).first()).toEqual({ n: 0 });

    // New publishes continue each mailbox's sequence; a brand-new mailbox starts above the floor too.
    await store.insertMessage({ userId: 'bob', senderId: 's', body: '"new"' });
    await store.insertMessage({ userId: 'erin', senderId: 's', body: '"first"' });
    expect((await store.readPending('bob', bob.cursor, 100)).messages.map((m) => m.seq)).toEqual([floor + 3]);
    expect((await store.readPending('erin', 500, 100)).messages.map((m) => m.seq)).toEqual([floor + 1]);

    // The new cursor acks exactly what its response held.
    expect(await store.ackThrough('bob', bob.cursor)).toBe(2);
    expect((await store.readPending('bob', 0, 100)).messages.map((m) => m.body)).toEqual(['"new"']);
    await store.close();
  });

  it('starts a fresh database at sequence 1', async () => {
    const store = await createKnexStore({ knex: await backend.createEmptyDatabase() });
    await store.insertMessage({ userId: 'bob', senderId: 's', body: '1' });
    expect((await store.readPending('bob', 0, 10)).cursor).toBe(1);
    await store.close();
  });
});

/**
 * A database written before topics (migrations 001-005), upgraded in place by the store's start-up
 * migration: 006 only adds `mailboxes.trimmed_seq`, so every mailbox and message stays as it was.
 */
describe.each(backendCases('upgrade to topics'))('in-place upgrade to topics (006) on $name', ({ make }) => {
  const backend = useBackend(make);

  /** A database at 005 with two mailboxes: bob (one acked, one unacked message) and carol (one, with a client id). */
  async function databaseBeforeTopics() {
    const knex = await backend.createEmptyDatabase();
    for (let migration = 1; migration <= 5; migration += 1) await knex.migrate.up({ migrationSource });
    expect(await knex.schema.hasColumn('mailboxes', 'trimmed_seq')).toBe(false);
    await knex('messages').insert([
      { user_id: 'bob', sender_id: 's', body: '"b1"', status: 'acked', created_at: 1, acked_at: 2, seq: 1 },
      { user_id: 'bob', sender_id: 's', body: '"b2"', status: 'pending', created_at: 1, seq: 2 },
      { user_id: 'carol', sender_id: 'alice', client_msg_id: 'c-1', body: '"c1"', status: 'pending', created_at: 1, seq: 1 },
    ]);
    await knex('mailboxes').insert([
      { user_id: 'bob', last_seq: 2, delivered_seq: 2 },
      { user_id: 'carol', last_seq: 1, delivered_seq: 0 },
    ]);
    return knex;
  }

  async function mailboxes(knex: Knex) {
    const rows = (await knex('mailboxes').orderBy('user_id').select()) as Array<Record<string, unknown>>;
    return rows.map((row) => Object.fromEntries(Object.entries(row).map(([column, value]) => [column, column === 'user_id' ? value : Number(value)])));
  }

  it('keeps every mailbox and message, each mailbox at trimmed_seq 0, and serves topics beside them at once', async () => {
    const knex = await databaseBeforeTopics();
    const store = await createKnexStore({ knex });
    expect(await mailboxes(knex)).toEqual([
      { user_id: 'bob', last_seq: 2, delivered_seq: 2, trimmed_seq: 0 },
      { user_id: 'carol', last_seq: 1, delivered_seq: 0, trimmed_seq: 0 },
    ]);
    expect((await store.readPending('bob', 1, 10)).messages.map((m) => [m.seq, m.body])).toEqual([[2, '"b2"']]);
    expect((await store.readPending('carol', 0, 10)).messages.map((m) => [m.seq, m.body])).toEqual([[1, '"c1"']]);
    // Sequences and idempotency carry on; a topic publish reusing carol's client id is a conflict.
    expect((await store.insertMessage({ userId: 'bob', senderId: 's', body: '"b3"' })).message?.seq).toBe(3);
    expect(await store.insertMessage({ userId: 'carol', senderId: 'alice', clientMessageId: 'c-1', body: '"c1"' })).toMatchObject({ duplicate: true, seq: 1 });
    await expect(store.insertMessage({ userId: topicKey('news'), senderId: 'alice', clientMessageId: 'c-1', body: '"c1"' })).rejects.toMatchObject({ code: 'idempotency_conflict' });

    await store.insertMessages(['1', '2', '3'].map((body) => ({ userId: topicKey('news'), senderId: 'alice', body })));
    expect(await store.trimTopics(1, 0, 100)).toBe(2);
    expect(await store.readTopic({ key: topicKey('news'), after: 0, limit: 10 })).toEqual({ messages: [expect.objectContaining({ seq: 3, body: '3' })], position: 3, earliest: 3 });
    // The trim touched no mailbox: bob's acked row is still there for retention to purge.
    expect(Number((await knex('messages').where({ user_id: 'bob' }).count({ n: '*' }).first())?.n)).toBe(3);
    await store.close();
  });

  it('drops trimmed_seq on the way down, keeping every row, and adds it again on the way up', async () => {
    const knex = await databaseBeforeTopics();
    await knex.migrate.up({ migrationSource }); // 006
    await knex('mailboxes').insert({ user_id: topicKey('news'), last_seq: 7, delivered_seq: 0, trimmed_seq: 5 });
    await knex.migrate.down({ migrationSource });
    expect(await knex.schema.hasColumn('mailboxes', 'trimmed_seq')).toBe(false);
    expect(await mailboxes(knex)).toEqual([
      { user_id: topicKey('news'), last_seq: 7, delivered_seq: 0 },
      { user_id: 'bob', last_seq: 2, delivered_seq: 2 },
      { user_id: 'carol', last_seq: 1, delivered_seq: 0 },
    ]);
    expect(Number((await knex('messages').count({ n: '*' }).first())?.n)).toBe(3);
    await knex.migrate.up({ migrationSource });
    expect((await mailboxes(knex)).map((row) => row.trimmed_seq)).toEqual([0, 0, 0]);
  });
});
