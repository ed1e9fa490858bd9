import type { Knex } from 'knex';

/**
 * Retention deletes `WHERE status = 'acked' AND acked_at < ? ORDER BY acked_at, id LIMIT n`.
 * Only acked rows have an `acked_at`, so an index on it alone (InnoDB appends the primary key) is
 * a range read in delete order: a purge batch touches only the rows it removes.
 *
 * Deliberately not (status, acked_at): with `status` leading, MariaDB picks that index for the
 * ack UPDATE (`WHERE user_id=? AND status='delivered' AND delivery_cursor <= ?`) and walks every
 * user's delivered rows instead of one user's (test/mysql-specific.test.ts checks that plan).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (table) => {
    table.index(['acked_at'], 'idx_messages_acked_at');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (table) => {
    table.dropIndex(['acked_at'], 'idx_messages_acked_at');
  });
}
