import type { Knex } from 'knex';

/**
 * Topics. A topic's messages are rows of `messages` under the stream key `#<name>` (no user id can
 * contain `#`), sequenced by a `mailboxes` row of that key exactly as a mailbox is, so a topic
 * read is the same range scan of (user_id, status, seq) as a poll's, and idempotency per sender
 * spans mailboxes and topics alike. `trimmed_seq` is how far a topic's history has been trimmed
 * (TOPIC_HISTORY_MAX / TOPIC_HISTORY_TTL_S): raised before the rows under it are deleted, so a
 * reader whose position is below it is told of the reset instead of silently skipping messages.
 * Mailboxes keep it at 0. Adding a column with a default changes no existing row.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mailboxes', (table) => {
    table.bigInteger('trimmed_seq').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('mailboxes', (table) => {
    table.dropColumn('trimmed_seq');
  });
}
