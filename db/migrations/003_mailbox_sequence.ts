import type { Knex } from 'knex';
import { SEQ_FLOOR_SETTING } from '../../src/store/knex/schema.js';

export { SEQ_FLOOR_SETTING };

/**
 * Per-mailbox sequence numbers (delivery model v2). Every message takes the next `seq` of its
 * recipient's mailbox inside the publish transaction, under the row lock of its `mailboxes` row:
 * one mailbox's commits are serialised, so sequence order is commit order and what a reader sees
 * of a mailbox is always a prefix. A cursor is then simply the last `seq` a client received; a
 * poll returns `seq > cursor`, an ack covers `seq <= cursor`, and no response ever writes.
 *
 * Upgrading in place: unacked rows get sequence numbers in id order and `delivered` becomes
 * `pending` again (a cursor is no longer a stamp). Cursors handed out before the upgrade were
 * stamps bounded by the highest id or stamp ever issued plus one per redelivered response, so new
 * sequences start 2^32 above the highest id or stamp the database remembers: an old cursor acks
 * nothing, and its client receives its unacked messages again (duplicates, which it drops by id).
 * A fresh database starts at 0.
 */
export const LEGACY_CURSOR_MARGIN = 2 ** 32;

async function highestIssuedNumber(knex: Knex): Promise<number> {
  const row = (await knex('messages').max({ maxId: 'id' }).max({ maxStamp: 'delivery_cursor' }).first()) as
    | { maxId: number | string | null; maxStamp: number | string | null }
    | undefined;
  let highest = Math.max(Number(row?.maxId ?? 0), Number(row?.maxStamp ?? 0));
  // Ids of rows that retention already purged: only the auto-increment counter remembers them.
  if (knex.client.config.client === 'mysql2') {
    const [counters] = (await knex.raw(
      "SELECT AUTO_INCREMENT AS next FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'messages'",
    )) as [Array<{ next: number | string | null }>];
    highest = Math.max(highest, Number(counters[0]?.next ?? 1) - 1);
  } else {
    const hasSequenceTable = await knex.schema.hasTable('sqlite_sequence');
    if (hasSequenceTable) {
      const counter = (await knex('sqlite_sequence').where({ name: 'messages' }).first('seq')) as { seq: number | string } | undefined;
      highest = Math.max(highest, Number(counter?.seq ?? 0));
    }
  }
  return highest;
}

export async function up(knex: Knex): Promise<void> {
  const highest = await highestIssuedNumber(knex);
  const floor = highest === 0 ? 0 : highest + LEGACY_CURSOR_MARGIN;

  await knex.schema.createTable('mailboxes', (table) => {
    table.string('user_id', 128).primary();
    table.bigInteger('last_seq').notNullable();
  });
  await knex.schema.createTable('delivery_settings', (table) => {
    table.string('name', 64).primary();
    table.bigInteger('value').notNullable();
  });
  await knex('delivery_settings').insert({ name: SEQ_FLOOR_SETTING, value: floor });

  await knex.schema.alterTable('messages', (table) => {
    table.bigInteger('seq').nullable();
  });
  // Number the unacked rows of each mailbox in id order, above the floor.
  if (knex.client.config.client === 'mysql2') {
    await knex.raw(
      `UPDATE messages m JOIN (
         SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id) AS n FROM messages WHERE status IN ('pending', 'delivered')
       ) numbered ON numbered.id = m.id
       SET m.seq = ? + numbered.n, m.status = 'pending'`,
      [floor],
    );
  } else {
    await knex.raw(
      `UPDATE messages SET status = 'pending', seq = ? + (
         SELECT COUNT(*) FROM messages earlier
         WHERE earlier.user_id = messages.user_id AND earlier.status IN ('pending', 'delivered') AND earlier.id <= messages.id
       ) WHERE status IN ('pending', 'delivered')`,
      [floor],
    );
  }
  await knex.raw(
    `INSERT INTO mailboxes (user_id, last_seq) SELECT user_id, MAX(seq) FROM messages WHERE seq IS NOT NULL GROUP BY user_id`,
  );

  // The card's (user_id, status) index, extended by seq: the poll read `user_id = ? AND status =
  // 'pending' ORDER BY seq LIMIT n` and the ack `... AND seq <= ?` are range scans on it.
  await knex.schema.alterTable('messages', (table) => {
    table.index(['user_id', 'status', 'seq'], 'idx_messages_user_status_seq');
  });
  await knex.schema.alterTable('messages', (table) => {
    table.dropIndex(['user_id', 'status'], 'idx_messages_user_status');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (table) => {
    table.index(['user_id', 'status'], 'idx_messages_user_status');
  });
  await knex.schema.alterTable('messages', (table) => {
    table.dropIndex(['user_id', 'status', 'seq'], 'idx_messages_user_status_seq');
    table.dropColumn('seq');
  });
  await knex.schema.dropTable('delivery_settings');
  await knex.schema.dropTable('mailboxes');
}
