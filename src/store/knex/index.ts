// The knex store: MySQL/MariaDB in production, SQLite as the embedded default.
export { createKnex, dialectOf, type DatabaseDialect, type KnexConnectionOptions } from './connection.js';
export { createKnexStore, openKnexStore, type KnexStore, type KnexStoreOptions } from './store.js';
export { ackQuery, deliveredQuery, mailboxSummaryQuery, pendingReadQuery, type AckRequest, type PendingRead } from './queries.js';
