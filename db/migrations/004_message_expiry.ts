import type { Knex } from 'knex';

/**
 * Message expiry: `expires_at` (epoch ms, NULL = never) is set at publish from `ttl`. Reads skip
 * expired rows, so an expired message is never delivered, also not to a poll that was already
 * waiting. Retention deletes rows that expired long enough ago walking `idx_messages_expires_at`
 * in order (NULLs, the rows that never expire, are not in the part of the index it reads).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (table) => {
    table.bigInteger('expires_at').nullable();
  });
  await knex.schema.alterTable('messages', (table) => {
    table.index(['expires_at'], 'idx_messages_expires_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (table) => {
    table.dropIndex(['expires_at'], 'idx_messages_expires_at');
  });
  await knex.schema.alterTable('messages', (table) => {
    table.dropColumn('expires_at');
  });
}
