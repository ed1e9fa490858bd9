import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { IdempotencyConflictError, StoreUnavailableError } from '../errors.js';
import { migrateToLatest } from './migrations.js';
import { createProbeBatcher } from './probe-batcher.js';
import {
  systemClock,
  type Clock,
  type DeliveryBatch,
  type InsertResult,
  type MessageDraft,
  type MessageStore,
  type RetentionStore,
  type StoredMessage,
} from './types.js';

const TABLE = 'messages';
type UnackedStatus = 'pending' | 'delivered';
const UNACKED: UnackedStatus[] = ['pending', 'delivered'];
const MESSAGE_COLUMNS = ['id', 'user_id', 'sender_id', 'client_msg_id', 'body', 'created_at'] as const;

interface MessageRow {
  id: number | string;
  status?: string;
  delivery_cursor?: number | string | null;
  user_id: string;
  sender_id: string;
  client_msg_id: string | null;
  body: string;
  created_at: number | string;
}

export type DatabaseDialect = 'mysql' | 'sqlite';

export interface KnexConnectionOptions {
  mysqlUrl?: string | undefined;
  mysqlPoolMax?: number;
  /** 0 = no limit. MariaDB's max_statement_time is in seconds (fractions allowed); MySQL's max_execution_time in ms. */
  mysqlStatementTimeoutMs?: number;
  mysqlAcquireTimeoutMs?: number;
  mysqlConnectTimeoutMs?: number;
  mysqlReconnectIntervalMs?: number;
  sqliteFile?: string;
}

/**
 * The URL as knex itself reads it (query parameters become driver options, JSON-decoded), plus
 * a connect timeout unless the URL gives one.
 */
function mysqlConnectionFromUrl(mysqlUrl: string, connectTimeoutMs: number): Knex.MySql2ConnectionConfig {
  const url = new URL(mysqlUrl);
  const connection: Record<string, unknown> = { host: url.hostname, database: url.pathname.replace(/^\//, ''), connectTimeout: connectTimeoutMs };
  if (url.port) connection.port = Number(url.port);
  if (url.username || url.password) connection.user = decodeURIComponent(url.username);
  if (url.password) connection.password = decodeURIComponent(url.password);
  for (const [key, value] of url.searchParams) {
    try {
      connection[key] = JSON.parse(value);
    } catch {
      connection[key] = value;
    }
  }
  return connection as Knex.MySql2ConnectionConfig;
}

/**
 * MariaDB limits every statement with max_statement_time (seconds); MySQL has no such variable and
 * limits SELECTs with max_execution_time (milliseconds). Try MariaDB's first, fall back on
 * "unknown system variable".
 */
function setStatementTimeout(
  connection: { query(sql: string, callback: (error: (Error & { errno?: number }) | null) => void): void },
  timeoutMs: number,
  done: (error: Error | null) => void,
): void {
  if (timeoutMs <= 0) return done(null);
  connection.query(`SET SESSION max_statement_time = ${(timeoutMs / 1000).toFixed(3)}`, (error) => {
    if (error?.errno !== 1193) return done(error);
    connection.query(`SET SESSION max_execution_time = ${Math.round(timeoutMs)}`, done);
  });
}

/**
 * @example
 * const knex = createKnex({ mysqlUrl: process.env.MYSQL_URL, sqliteFile: './data/gateway.sqlite' });
 */
export function createKnex(options: KnexConnectionOptions): Knex {
  if (options.mysqlUrl) {
    return knexFactory({
      client: 'mysql2',
      connection: mysqlConnectionFromUrl(options.mysqlUrl, options.mysqlConnectTimeoutMs ?? 10_000),
      pool: {
        min: 0,
        max: options.mysqlPoolMax ?? 20,
        // A connection that broke (server restart, network cut) is discarded by knex; the next
        // acquire opens a new one, retrying this often until the acquire timeout runs out.
        createRetryIntervalMillis: options.mysqlReconnectIntervalMs ?? 200,
        // READ COMMITTED: under REPEATABLE READ every poll's UPDATE takes next-key (gap) locks on
        // the (user_id, status) index, and publishes to neighbouring user ids queue behind them.
        // A short lock wait turns any remaining contention into a fast, retryable 503.
        afterCreate: (
          connection: { query(sql: string, callback: (error: Error | null) => void): void },
          done: (error: Error | null, connection: unknown) => void,
        ) => {
          connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (isolationError) => {
            if (isolationError) return done(isolationError, connection);
            connection.query('SET SESSION innodb_lock_wait_timeout = 5', (timeoutError) => {
              if (timeoutError) return done(timeoutError, connection);
              setStatementTimeout(connection, options.mysqlStatementTimeoutMs ?? 0, (statementError) => done(statementError, connection));
            });
          });
        },
      },
      // Fail fast instead of queueing behind a dead server: callers answer 503 + Retry-After.
      acquireConnectionTimeout: options.mysqlAcquireTimeoutMs ?? 5_000,
    });
  }
  const filename = options.sqliteFile ?? ':memory:';
  if (filename !== ':memory:') mkdirSync(dirname(filename), { recursive: true });
  return knexFactory({
    client: 'better-sqlite3',
    connection: { filename },
    useNullAsDefault: true,
    pool: {
      // WAL lets readers proceed during a write; busy_timeout waits for another process's lock.
      afterCreate: (connection: { pragma(sql: string): unknown }, done: (error: Error | null, connection: unknown) => void) => {
        try {
          if (filename !== ':memory:') connection.pragma('journal_mode = WAL');
          connection.pragma('busy_timeout = 5000');
          done(null, connection);
        } catch (error) {
          done(error as Error, connection);
        }
      },
    },
  });
}

export function dialectOf(knex: Knex): DatabaseDialect {
  return knex.client.config.client === 'mysql2' ? 'mysql' : 'sqlite';
}

/**
 * The hot read of a poll: a user's unacked messages of one status, in id order. Exported so the
 * MySQL plan test EXPLAINs exactly what runs. One status per query keeps ORDER BY id served by
 * the (user_id, status) index; an IN over both statuses would need a filesort to merge them.
 */
export function unackedByStatusQuery(db: Knex, userId: string, status: UnackedStatus, limit: number): Knex.QueryBuilder {
  return db(TABLE)
    .select([...MESSAGE_COLUMNS, 'status', 'delivery_cursor'])
    .where({ user_id: userId, status })
    .orderBy('id', 'asc')
    .limit(limit);
}

function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    id: Number(row.id),
    userId: row.user_id,
    senderId: row.sender_id,
    clientMessageId: row.client_msg_id,
    body: row.body,
    createdAt: Number(row.created_at),
  };
}

function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT',
  // Two batches inserting overlapping idempotency keys in opposite orders: retrying is safe.
  'ER_LOCK_DEADLOCK',
  'SQLITE_BUSY',
  // MYSQL_STATEMENT_TIMEOUT_MS ran out (MySQL's name; MariaDB's 1969 has none in mysql2).
  'ER_QUERY_TIMEOUT',
]);
const MARIADB_STATEMENT_TIMEOUT_ERRNO = 1969;

/** Connection-level failures are retryable (503); anything else is a bug and stays a 500. */
function classifyStoreError(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  const fatal = (error as { fatal?: unknown } | null)?.fatal;
  const errno = (error as { errno?: unknown } | null)?.errno;
  if ((typeof code === 'string' && UNAVAILABLE_CODES.has(code)) || errno === MARIADB_STATEMENT_TIMEOUT_ERRNO || name === 'KnexTimeoutError' || fatal === true) {
    return new StoreUnavailableError(error);
  }
  return error;
}

async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw classifyStoreError(error);
  }
}

export interface KnexStoreOptions {
  /** Run migrations before first use (default true). */
  migrate?: boolean;
}

/**
 * MessageStore on knex, for MySQL/MariaDB (production) and SQLite (embedded default).
 *
 * @example
 * const store = await createKnexStore({ knex: createKnex({ sqliteFile: ':memory:' }) });
 * const { id } = await store.insertMessage({ userId: 'bob', senderId: 'alice', body: '"hi"' });
 */
export async function createKnexStore(
  dependencies: { knex: Knex; clock?: Clock },
  options: KnexStoreOptions = {},
): Promise<MessageStore & RetentionStore & { readonly knex: Knex }> {
  const { knex } = dependencies;
  const clock = dependencies.clock ?? systemClock;
  if (options.migrate ?? true) await guarded(() => migrateToLatest(knex));

  /** Which unacked statuses each user has: one covering-index query for a whole tick of polls. */
  const unackedStatusesOf = createProbeBatcher(async (userIds) => {
    const rows = (await knex(TABLE).distinct('user_id', 'status').whereIn('user_id', userIds).whereIn('status', UNACKED)) as Array<{
      user_id: string;
      status: UnackedStatus;
    }>;
    const found = new Map<string, UnackedStatus[]>();
    for (const row of rows) found.set(row.user_id, [...(found.get(row.user_id) ?? []), row.status]);
    return found;
  });

  async function findByClientId(db: Knex | Knex.Transaction, senderId: string, clientMessageId: string): Promise<(MessageRow & { user_id: string }) | undefined> {
    return db(TABLE).select(MESSAGE_COLUMNS).where({ sender_id: senderId, client_msg_id: clientMessageId }).first();
  }

  async function insertOne(db: Knex | Knex.Transaction, draft: MessageDraft): Promise<InsertResult> {
    const clientMessageId = draft.clientMessageId ?? null;
    try {
      const [id] = await db(TABLE).insert({
        user_id: draft.userId,
        sender_id: draft.senderId,
        client_msg_id: clientMessageId,
        body: draft.body,
        status: 'pending',
        created_at: clock.now(),
      });
      return { id: Number(id), duplicate: false };
    } catch (error) {
      // The unique index decides between concurrent identical publishes; the loser reads the
      // winner's row. A read-then-insert check would let both through.
      if (clientMessageId === null || !isUniqueViolation(error)) throw error;
      const existing = await findByClientId(db, draft.senderId, clientMessageId);
      if (!existing) throw error;
      if (existing.user_id !== draft.userId || existing.body !== draft.body) {
        throw new IdempotencyConflictError(clientMessageId);
      }
      return { id: Number(existing.id), duplicate: true };
    }
  }

  async function insertMessage(draft: MessageDraft): Promise<InsertResult> {
    return guarded(() => insertOne(knex, draft));
  }

  /**
   * All or nothing: an idempotency conflict on item k must not leave items 0..k-1 stored behind
   * a 409 the client cannot tell apart from "nothing happened". A failed INSERT (duplicate key)
   * only fails its statement, so the transaction goes on to read the existing row.
   */
  async function insertMessages(drafts: readonly MessageDraft[]): Promise<InsertResult[]> {
    return guarded(() =>
      knex.transaction(async (trx) => {
        const results: InsertResult[] = [];
        // Sequential: one sender's messages get ids in the order they were given.
        for (const draft of drafts) results.push(await insertOne(trx, draft));
        return results;
      }),
    );
  }

  async function ackThrough(userId: string, cursor: number): Promise<number> {
    if (cursor <= 0) return 0;
    return guarded(() =>
      knex(TABLE)
        .where({ user_id: userId, status: 'delivered' })
        .andWhere('delivery_cursor', '<=', cursor)
        .update({ status: 'acked', acked_at: clock.now() }),
    );
  }

  /**
   * Without a transaction on purpose: REPEATABLE READ without locking reads would not make the
   * read-then-update atomic anyway. What keeps it safe is that the UPDATE only touches rows that
   * are still unacked, and the engine runs one delivery per user at a time in a process.
   */
  async function deliverPending(userId: string, cursor: number, limit: number): Promise<DeliveryBatch> {
    return guarded(async () => {
      // Most reads by a held poll find nothing. A batched index probe answers that for many users
      // in one query, which keeps a burst of thousands of new polls from queueing on the pool.
      const statuses = await unackedStatusesOf(userId);
      if (statuses.length === 0) return { messages: [], cursor };
      const fetched: MessageRow[] = [];
      for (const status of statuses) fetched.push(...((await unackedByStatusQuery(knex, userId, status, limit)) as MessageRow[]));
      const redeliveries = fetched.filter((row) => row.status === 'delivered');
      const rows = fetched
        .map(toStoredMessage)
        .sort((a, b) => a.id - b.id)
        .slice(0, limit);
      if (rows.length === 0) return { messages: [], cursor };

      let highestStamp = Math.max(0, ...redeliveries.map((row) => Number(row.delivery_cursor ?? 0)));
      if (redeliveries.length >= limit) {
        // More redeliveries than we read: an unread one may carry a higher stamp.
        const stampRow = (await knex(TABLE).where({ user_id: userId, status: 'delivered' }).max({ highest: 'delivery_cursor' }).first()) as
          | { highest: number | string | null }
          | undefined;
        highestStamp = Math.max(highestStamp, Number(stampRow?.highest ?? 0));
      }
      const highestId = rows[rows.length - 1]!.id;
      // Strictly above every earlier stamp: a response that was lost cannot share a stamp with
      // one the client did receive, so acking the received cursor never acks unseen rows.
      const nextCursor = Math.max(cursor + 1, highestId, highestStamp + 1);

      await knex(TABLE)
        .where({ user_id: userId })
        .whereIn('status', UNACKED)
        .whereIn(
          'id',
          rows.map((row) => row.id),
        )
        .update({ status: 'delivered', delivery_cursor: nextCursor });
      return { messages: rows, cursor: nextCursor };
    });
  }

  /**
   * Walks idx_messages_acked_at (acked_at[, id]) in order, so each DELETE touches
   * only the rows it removes: no table scan, no long lock. MySQL takes ORDER BY + LIMIT on a
   * DELETE directly; SQLite (built without that option) needs the ids from a subquery.
   */
  async function purgeAcked(ackedBefore: number, limit: number): Promise<number> {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new TypeError('Expected `limit` to be a positive integer');
    return guarded(async () => {
      if (dialectOf(knex) === 'mysql') {
        const [result] = (await knex.raw('DELETE FROM ?? WHERE status = ? AND acked_at < ? ORDER BY acked_at, id LIMIT ?', [
          TABLE,
          'acked',
          ackedBefore,
          limit,
        ])) as [{ affectedRows: number }];
        return result.affectedRows;
      }
      return knex(TABLE)
        .whereIn('id', knex(TABLE).select('id').where('status', 'acked').andWhere('acked_at', '<', ackedBefore).orderBy([{ column: 'acked_at' }, { column: 'id' }]).limit(limit))
        .del();
    });
  }

  return {
    knex,
    insertMessage,
    insertMessages,
    ackThrough,
    deliverPending,
    purgeAcked,
    async ping() {
      await guarded(() => knex.raw('select 1'));
    },
    async close() {
      await knex.destroy();
    },
  };
}
