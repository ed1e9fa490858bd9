import knexFactory, { type Knex } from 'knex';
import * as createMessages from '../../db/migrations/001_create_messages.js';
import * as indexAckedForRetention from '../../db/migrations/002_index_acked_for_retention.js';
import * as mailboxSequence from '../../db/migrations/003_mailbox_sequence.js';
import * as messageExpiry from '../../db/migrations/004_message_expiry.js';
import * as deliveryReceipts from '../../db/migrations/005_delivery_receipts.js';
import * as topics from '../../db/migrations/006_topics.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * Migrations are imported statically rather than discovered on disk, so the same list runs from
 * TypeScript sources (tests) and from the compiled build without a loader for .ts files.
 */
const migrations: Array<[name: string, migration: Migration]> = [
  ['001_create_messages', createMessages],
  ['002_index_acked_for_retention', indexAckedForRetention],
  ['003_mailbox_sequence', mailboxSequence],
  ['004_message_expiry', messageExpiry],
  ['005_delivery_receipts', deliveryReceipts],
  ['006_topics', topics],
];

export const migrationSource: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => migrations,
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};

/**
 * Brings the schema up to date; safe to run from several gateways at once. knex's own lock is not
 * enough for that: a process that finds it taken fails at once, and two processes that create
 * knex's bookkeeping tables together can each insert a lock row, after which no migration can
 * ever take the lock. On MySQL the whole run is therefore serialised with a server-side named lock
 * (GET_LOCK, on a connection of its own); SQLite serialises writers on its file lock anyway.
 */
export async function migrateToLatest(knex: Knex, options: { lockWaitMs?: number } = {}): Promise<void> {
  const lockWaitMs = options.lockWaitMs ?? 60_000;
  if (knex.client.config.client !== 'mysql2') {
    await knex.migrate.latest({ migrationSource });
    return;
  }
  const lockHolder = knexFactory({ client: 'mysql2', connection: knex.client.config.connection, pool: { min: 0, max: 1 } });
  try {
    await lockHolder.transaction(async (session) => {
      // A transaction pins one connection: GET_LOCK and RELEASE_LOCK must run on the same session.
      const [rows] = (await session.raw(`SELECT GET_LOCK(${MIGRATION_LOCK_SQL}, ?) AS acquired`, [MIGRATION_LOCK_PREFIX, Math.ceil(lockWaitMs / 1000)])) as [
        Array<{ acquired: number | null }>,
      ];
      if (Number(rows[0]?.acquired) !== 1) throw new Error(`another process held the migration lock for ${lockWaitMs} ms`);
      try {
        await knex.migrate.latest({ migrationSource });
      } finally {
        await session.raw(`SELECT RELEASE_LOCK(${MIGRATION_LOCK_SQL})`, [MIGRATION_LOCK_PREFIX]);
      }
    });
  } finally {
    await lockHolder.destroy();
  }
}

/** One lock name per database (names are server-wide, at most 64 characters). */
const MIGRATION_LOCK_PREFIX = 'lpg-migrate:';
const MIGRATION_LOCK_SQL = 'LEFT(CONCAT(?, DATABASE()), 64)';
