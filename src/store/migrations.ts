import type { Knex } from 'knex';
import * as createMessages from '../../db/migrations/001_create_messages.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * Migrations are imported statically rather than discovered on disk, so the same list runs from
 * TypeScript sources (tests) and from the compiled build without a loader for .ts files.
 */
const migrations: Array<[name: string, migration: Migration]> = [['001_create_messages', createMessages]];

const migrationSource: Knex.MigrationSource<[string, Migration]> = {
  getMigrations: async () => migrations,
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};

/** Brings the schema up to date; safe to run from several processes at once (knex takes a lock). */
export async function migrateToLatest(knex: Knex): Promise<void> {
  await knex.migrate.latest({ migrationSource });
}
