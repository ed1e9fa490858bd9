import type { Knex } from 'knex';

/**
 * `id` is the message's server id; `delivery_cursor` is the stamp of the poll response that last
 * carried the row (see src/store/types.ts for why acks compare stamps, not ids).
 * The (user_id, status) index serves every hot query: with InnoDB the primary key is appended to
 * a secondary index, so `WHERE user_id=? AND status=? ORDER BY id LIMIT n` is a range scan with no
 * filesort.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('messages', (table) => {
    table.bigIncrements('id').primary();
    table.string('user_id', 128).notNullable();
    table.string('sender_id', 128).notNullable();
    table.string('client_msg_id', 128).nullable();
    table.text('body', 'mediumtext').notNullable();
    table.enu('status', ['pending', 'delivered', 'acked']).notNullable().defaultTo('pending');
    table.bigInteger('delivery_cursor').nullable();
    table.bigInteger('created_at').notNullable();
    table.bigInteger('acked_at').nullable();
    table.index(['user_id', 'status'], 'idx_messages_user_status');
    table.unique(['sender_id', 'client_msg_id'], { indexName: 'uq_messages_sender_client_msg' });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('messages');
}
