import { describe, expect, it } from 'vitest';
import { LEGACY_CURSOR_MARGIN } from '../../db/migrations/003_mailbox_sequence.js';
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
