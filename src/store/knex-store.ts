import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { IdempotencyConflictError, StoreUnavailableError } from '../errors.js';
import { migrateToLatest } from './migrations.js';
import { createTickBatcher } from '../batching/tick-batcher.js';
import { SEQ_FLOOR_SETTING } from '../../db/migrations/003_mailbox_sequence.js';
import {
  systemClock,
  type Clock,
  type DeliveryBatch,
  type InsertResult,
  type MailboxSummary,
  type MessageDraft,
  type MessageStatus,
  RECEIPT_SENDER,
  type MessageStore,
  type RetentionStore,
  type StoredMessage,
} from './types.js';

const TABLE = 'messages';
const MESSAGE_COLUMNS = ['id', 'user_id', 'sender_id', 'client_msg_id', 'body', 'created_at', 'seq', 'expires_at'] as const;

interface MessageRow {
  id: number | string;
  seq: number | string;
  expires_at: number | string | null;
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
  // multipleStatements: the store sends a whole publish transaction as one script (one round
  // trip). Every value still goes through placeholders.
  const connection: Record<string, unknown> = {
    host: url.hostname,
    database: url.pathname.replace(/^\//, ''),
    connectTimeout: connectTimeoutMs,
    multipleStatements: true,
  };
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

export interface PendingRead {
  userId: string;
  cursor: number;
  limit: number;
}

/**
 * The hot read of polls: for each request, the user's unacked, unexpired messages after its cursor
 * in mailbox order, all in one statement (one sub-select per request, glued with UNION ALL). Each
 * sub-select is a range scan of (user_id, status, seq) with no filesort. A cursor above the
 * mailbox's last sequence was never issued by it (a reset database, a forged value): that request
 * reads from the start. Rows carry `read_index`, the position of the request they answer.
 * Exported so the MySQL plan test EXPLAINs exactly what runs.
 */
export function pendingReadQuery(db: Knex, requests: readonly PendingRead[], now: number): Knex.Raw {
  const parts: string[] = [];
  const bindings: Array<string | number> = [];
  // MySQL runs parenthesised UNION members directly; wrapped as derived tables each one was
  // materialised on its own (measured on MariaDB 10.11: 107 ms for 100 reads, against 6 ms).
  // SQLite accepts only the derived-table form, and flattens it.
  const wrap = dialectOf(db) === 'mysql' ? (select: string) => `(${select})` : (select: string, index: number) => `SELECT * FROM (${select}) AS pending_${index}`;
  requests.forEach((request, index) => {
    const after =
      request.cursor > 0 ? '(CASE WHEN EXISTS (SELECT 1 FROM mailboxes WHERE user_id = ? AND last_seq >= ?) THEN ? ELSE 0 END)' : '0';
    parts.push(
      wrap(
        `SELECT ${index} AS read_index, ${MESSAGE_COLUMNS.join(', ')} FROM ${TABLE} WHERE user_id = ? AND status = 'pending' AND seq > ${after} AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq LIMIT ?`,
        index,
      ),
    );
    bindings.push(request.userId);
    if (request.cursor > 0) bindings.push(request.userId, request.cursor, request.cursor);
    bindings.push(now, request.limit);
  });
  return db.raw(parts.join(' UNION ALL '), bindings);
}

/**
 * The badge query: a user's unacked, unexpired messages (not receipts) and the oldest one's time, from the
 * (user_id, status, seq) index and those rows. Exported for the MySQL plan test.
 */
export function mailboxSummaryQuery(db: Knex, userId: string, now: number): Knex.QueryBuilder {
  return db(TABLE)
    .count({ pending: '*' })
    .min({ oldest: 'created_at' })
    .where({ user_id: userId, status: 'pending' })
    // Receipts wait in the mailbox too, but a badge counts messages.
    .andWhereNot('sender_id', RECEIPT_SENDER)
    .andWhere((query) => query.whereNull('expires_at').orWhere('expires_at', '>', now));
}

export interface AckRequest {
  userId: string;
  cursor: number;
}

/**
 * Acks `seq <= cursor` for each request in one UPDATE, only where the mailbox issued that cursor
 * (a cursor above its last sequence stands for nothing the client received). Exported for the
 * MySQL plan test.
 */
export function ackQuery(db: Knex, requests: readonly AckRequest[], ackedAt: number): Knex.Raw {
  const bindings: Array<string | number> = [ackedAt];
  const conditions = requests.map((request) => {
    bindings.push(request.userId, request.cursor, request.userId, request.cursor);
    return '(user_id = ? AND seq <= ? AND EXISTS (SELECT 1 FROM mailboxes WHERE user_id = ? AND last_seq >= ?))';
  });
  // A receipt falls due with the ack that covers its message, unless the message expired first.
  bindings.splice(1, 0, ackedAt);
  return db.raw(
    `UPDATE ${TABLE} SET status = 'acked', acked_at = ?, receipt_due = CASE WHEN receipt = 1 AND (expires_at IS NULL OR expires_at > ?) THEN 1 ELSE 0 END WHERE status = 'pending' AND (${conditions.join(' OR ')})`,
    bindings,
  );
}

function toStoredMessage(row: MessageRow): StoredMessage {
  return {
    id: Number(row.id),
    userId: row.user_id,
    senderId: row.sender_id,
    clientMessageId: row.client_msg_id,
    body: row.body,
    createdAt: Number(row.created_at),
    seq: Number(row.seq),
    expiresAt: row.expires_at === null || row.expires_at === undefined ? null : Number(row.expires_at),
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

/** Rows of a raw SELECT: mysql2 answers [rows, fields], better-sqlite3 the rows. */
function resultRows<Row>(result: unknown): Row[] {
  return (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result) as Row[];
}

/** Rows changed by a raw UPDATE: mysql2 answers [ResultSetHeader], better-sqlite3 {changes}. */
function affectedRows(result: unknown): number {
  if (Array.isArray(result)) return Number((result[0] as { affectedRows?: number }).affectedRows ?? 0);
  return Number((result as { changes?: number }).changes ?? 0);
}

/**
 * InnoDB picks a victim when two publishes lock the same idempotency keys crosswise; the victim's
 * transaction was rolled back whole, so running it again is safe.
 */
async function withDeadlockRetry<T>(transaction: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await transaction();
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ER_LOCK_DEADLOCK' || attempt >= attempts) throw error;
    }
  }
}

async function guarded<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw classifyStoreError(error);
  }
}

/** How long poll acks are collected before their UPDATE goes out. */
const ACK_WINDOW_MS = 20;

/** The part of a mysql2 connection (callback API) that scripts use. */
interface ScriptConnection {
  query(options: string | { sql: string; values?: unknown[] }, callback: (error: Error | null, results?: unknown) => void): void;
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
): Promise<KnexStore> {
  const { knex } = dependencies;
  const clock = dependencies.clock ?? systemClock;
  const dialect = dialectOf(knex);
  if (options.migrate ?? true) await guarded(() => migrateToLatest(knex));
  const seqFloor = await guarded(readSeqFloor);
  // A multi-row INSERT gets consecutive ids only when auto-increment locking says so (MySQL
  // modes 0 and 1; SQLite has one writer). Under interleaved mode 2 each row is inserted alone.
  const consecutiveIds = dialect === 'sqlite' || (await guarded(readAutoincLockMode)) <= 1;

  async function readSeqFloor(): Promise<number> {
    const row = (await knex('delivery_settings').where({ name: SEQ_FLOOR_SETTING }).first('value')) as { value: number | string } | undefined;
    return Number(row?.value ?? 0);
  }

  async function readAutoincLockMode(): Promise<number> {
    const [rows] = (await knex.raw('SELECT @@innodb_autoinc_lock_mode AS mode')) as [Array<{ mode: number | string }>];
    return Number(rows[0]?.mode ?? 2);
  }

  async function findByClientId(db: Knex | Knex.Transaction, senderId: string, clientMessageId: string): Promise<(MessageRow & { user_id: string }) | undefined> {
    return db(TABLE).select(MESSAGE_COLUMNS).where({ sender_id: senderId, client_msg_id: clientMessageId }).first();
  }

  /** The stored row for a repeated (sender, client id), or a conflict when it was a different message. */
  function asDuplicate(existing: MessageRow, draft: MessageDraft): InsertResult {
    if (existing.user_id !== draft.userId || existing.body !== draft.body) throw new IdempotencyConflictError(draft.clientMessageId!);
    return { id: Number(existing.id), duplicate: true };
  }

  interface Statement {
    sql: string;
    bindings: Array<string | number | null>;
  }

  /**
   * Takes `count` sequence numbers from each recipient's mailbox. The upsert locks the mailbox rows
   * until commit, which is what makes sequence order commit order; rows are locked in user id
   * order so two transactions never wait on each other crosswise.
   */
  function reserveSequences(countByUser: ReadonlyMap<string, number>): Statement {
    const users = [...countByUser.keys()].sort();
    const bindings: Statement['bindings'] = [];
    for (const userId of users) bindings.push(userId, seqFloor + countByUser.get(userId)!);
    bindings.push(seqFloor);
    const values = users.map(() => '(?, ?)').join(', ');
    return {
      sql:
        dialect === 'mysql'
          ? `INSERT INTO mailboxes (user_id, last_seq) VALUES ${values} ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq) - ?`
          : `INSERT INTO mailboxes (user_id, last_seq) VALUES ${values} ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq - ?`,
      bindings,
    };
  }

  /**
   * How far below its mailbox's new head each draft lands: the k-th of n drafts to one mailbox
   * takes head - (n - 1 - k).
   */
  function offsetsBelowHead(drafts: readonly MessageDraft[]): number[] {
    const remaining = countByRecipient(drafts);
    return drafts.map((draft) => {
      const left = remaining.get(draft.userId)! - 1;
      remaining.set(draft.userId, left);
      return left;
    });
  }

  function expiresAtOf(draft: MessageDraft, createdAt: number): number | null {
    return draft.ttlSeconds === undefined ? null : createdAt + draft.ttlSeconds * 1000;
  }

  /**
   * Rows of drafts whose mailboxes were just advanced by `reserveSequences` in the same
   * transaction. Each row's `seq` is read from its (locked) mailbox row by the INSERT itself: the
   * k-th of n drafts to one mailbox takes last_seq - (n - 1 - k), so no round trip is needed to
   * learn the counters first.
   */
  function sequencedRows(drafts: readonly MessageDraft[], offsets: readonly number[], createdAt: number): Statement[] {
    return drafts.map((draft, index) => ({
      sql: "(?, ?, ?, ?, 'pending', ?, ?, ?, (SELECT last_seq FROM mailboxes WHERE user_id = ?) - ?)",
      bindings: [
        draft.userId,
        draft.senderId,
        draft.clientMessageId ?? null,
        draft.body,
        createdAt,
        expiresAtOf(draft, createdAt),
        draft.receipt ? 1 : 0,
        draft.userId,
        offsets[index]!,
      ],
    }));
  }

  function readHeads(users: readonly string[]): Statement {
    return { sql: `SELECT user_id, last_seq FROM mailboxes WHERE user_id IN (${users.map(() => '?').join(', ')})`, bindings: [...users] };
  }

  function storedMessages(drafts: readonly MessageDraft[], ids: readonly number[], offsets: readonly number[], headRows: unknown, createdAt: number): StoredMessage[] {
    const heads = new Map(resultRows<{ user_id: string; last_seq: number | string }>(headRows).map((row) => [row.user_id, Number(row.last_seq)]));
    return drafts.map((draft, index) => ({
      id: ids[index]!,
      userId: draft.userId,
      senderId: draft.senderId,
      clientMessageId: draft.clientMessageId ?? null,
      body: draft.body,
      createdAt,
      seq: heads.get(draft.userId)! - offsets[index]!,
      expiresAt: expiresAtOf(draft, createdAt),
    }));
  }

  function insertRows(rows: readonly Statement[]): Statement {
    return {
      sql: `INSERT INTO ${TABLE} (user_id, sender_id, client_msg_id, body, status, created_at, expires_at, receipt, seq) VALUES ${rows.map((row) => row.sql).join(', ')}`,
      bindings: rows.flatMap((row) => row.bindings),
    };
  }

  function countByRecipient(drafts: readonly MessageDraft[]): Map<string, number> {
    const counts = new Map<string, number>();
    for (const draft of drafts) counts.set(draft.userId, (counts.get(draft.userId) ?? 0) + 1);
    return counts;
  }

  /**
   * MySQL: statements sent as one script in one round trip on one pooled connection. A failing
   * statement stops the script where it is, so an open transaction is rolled back before the
   * connection goes back to the pool.
   */
  async function runScript(statements: readonly Statement[]): Promise<unknown[]> {
    const connection = (await knex.client.acquireConnection()) as ScriptConnection;
    try {
      return await new Promise<unknown[]>((resolve, reject) => {
        connection.query(
          { sql: statements.map((statement) => statement.sql).join(';\n'), values: statements.flatMap((statement) => statement.bindings) },
          (error, results) => (error ? reject(error) : resolve(statements.length === 1 ? [results] : (results as unknown[]))),
        );
      });
    } catch (error) {
      await new Promise<void>((resolve) => connection.query('ROLLBACK', () => resolve()));
      throw error;
    } finally {
      await knex.client.releaseConnection(connection);
    }
  }

  /** The id of each row of a multi-row INSERT: mysql2 reports the first, SQLite the last. */
  function insertedIds(response: unknown, rows: number): number[] {
    // knex.raw on mysql2 answers [header, fields]; a script's results are the headers.
    const result = Array.isArray(response) ? response[0] : response;
    const reported = dialect === 'mysql' ? Number((result as { insertId: number }).insertId) : Number((result as { lastInsertRowid: number }).lastInsertRowid);
    const first = dialect === 'mysql' ? reported : reported - rows + 1;
    return Array.from({ length: rows }, (_, index) => first + index);
  }

  /**
   * The statements that store drafts in sequence (mailbox upsert, the INSERT — one per row where
   * auto-increment is interleaved — and the read of the new heads) and how to read the stored rows
   * from their results. Run inside one transaction, as a script or one by one.
   */
  function sequencedInsert(drafts: readonly MessageDraft[]): { statements: Statement[]; stored(results: readonly unknown[]): StoredMessage[] } {
    const createdAt = clock.now();
    const counts = countByRecipient(drafts);
    const offsets = offsetsBelowHead(drafts);
    const rows = sequencedRows(drafts, offsets, createdAt);
    const inserts = consecutiveIds ? [insertRows(rows)] : rows.map((row) => insertRows([row]));
    return {
      statements: [reserveSequences(counts), ...inserts, readHeads([...counts.keys()])],
      stored(results) {
        const insertResults = results.slice(1, 1 + inserts.length);
        const ids = consecutiveIds ? insertedIds(insertResults[0], drafts.length) : insertResults.map((result) => insertedIds(result, 1)[0]!);
        return storedMessages(drafts, ids, offsets, results[1 + inserts.length], createdAt);
      },
    };
  }

  async function runInTransaction(trx: Knex.Transaction, statements: readonly Statement[]): Promise<unknown[]> {
    const results: unknown[] = [];
    for (const statement of statements) results.push(await trx.raw(statement.sql, statement.bindings));
    return results;
  }

  /**
   * Group commit: every draft of every publish that arrived in one tick, in one transaction. On
   * MySQL the whole transaction is one round trip. Throws (and stores nothing) on any unique
   * violation: the caller then replays each publish on its own, where repeats are told apart from
   * conflicts.
   */
  async function insertGroup(drafts: readonly MessageDraft[]): Promise<StoredMessage[]> {
    const insert = sequencedInsert(drafts);
    if (dialect === 'mysql') {
      const results = await runScript([{ sql: 'START TRANSACTION', bindings: [] }, ...insert.statements, { sql: 'COMMIT', bindings: [] }]);
      return insert.stored(results.slice(1, -1));
    }
    return knex.transaction(async (trx) => insert.stored(await runInTransaction(trx, insert.statements)));
  }

  /**
   * One publish on its own, draft by draft: a repeated (sender, client id) returns the stored row
   * and a reused one with another body is a conflict that rolls the whole publish back. The unique
   * index decides between concurrent identical publishes; the loser reads the winner's row.
   */
  async function insertAlone(drafts: readonly MessageDraft[]): Promise<InsertResult[]> {
    return knex.transaction(async (trx) => {
      const results: InsertResult[] = [];
      for (const draft of drafts) {
        const clientMessageId = draft.clientMessageId ?? null;
        if (clientMessageId !== null) {
          const existing = await findByClientId(trx, draft.senderId, clientMessageId);
          if (existing) {
            results.push(asDuplicate(existing, draft));
            continue;
          }
        }
        try {
          const insert = sequencedInsert([draft]);
          const [message] = insert.stored(await runInTransaction(trx, insert.statements));
          results.push({ id: message!.id, duplicate: false, message: message! });
        } catch (error) {
          if (clientMessageId === null || !isUniqueViolation(error)) throw error;
          // The sequence number the mailbox upsert took stays unused: a gap, which no reader depends on.
          const existing = await findByClientId(trx, draft.senderId, clientMessageId);
          if (!existing) throw error;
          results.push(asDuplicate(existing, draft));
        }
      }
      return results;
    });
  }

  const insertCoalesced = createTickBatcher<readonly MessageDraft[], InsertResult[]>(
    async (publishes) => {
      const drafts = publishes.flat();
      try {
        const stored = await withDeadlockRetry(() => insertGroup(drafts));
        let next = 0;
        return publishes.map((publish) => ({
          status: 'fulfilled',
          value: publish.map(() => {
            const message = stored[next++]!;
            return { id: message.id, duplicate: false, message };
          }),
        }));
      } catch (error) {
        if (!isUniqueViolation(error)) throw classifyStoreError(error);
      }
      return Promise.allSettled(publishes.map((publish) => guarded(() => withDeadlockRetry(() => insertAlone(publish)))));
    },
    // A group's INSERT must stay well inside max_allowed_packet (16 MiB by default).
    { maxBatch: 200, maxInFlight: 4 },
  );

  async function insertMessages(drafts: readonly MessageDraft[]): Promise<InsertResult[]> {
    if (drafts.length === 0) return [];
    return insertCoalesced(drafts);
  }

  async function insertMessage(draft: MessageDraft): Promise<InsertResult> {
    return (await insertCoalesced([draft]))[0]!;
  }

  async function ackThrough(userId: string, cursor: number): Promise<number> {
    if (cursor <= 0) return 0;
    return guarded(async () => affectedRows(await ackQuery(knex, [{ userId, cursor }], clock.now())));
  }

  /**
   * The acks of polls, folded into one UPDATE per window. Nobody waits on them: a read asks for
   * `seq > cursor` itself, so an ack that lands a few milliseconds later changes no answer; and an
   * ack lost with the process is covered by the client's next, higher cursor.
   */
  const acknowledgeCoalesced = createTickBatcher<AckRequest, void>(
    async (requests) => {
      const unique = new Map(requests.map((request) => [`${request.cursor}:${request.userId}`, request]));
      await guarded(() => ackQuery(knex, [...unique.values()], clock.now()));
      return requests.map(() => ({ status: 'fulfilled', value: undefined }));
    },
    { maxBatch: 500, windowMs: ACK_WINDOW_MS },
  );

  async function acknowledge(userId: string, cursor: number): Promise<void> {
    if (cursor > 0) await acknowledgeCoalesced({ userId, cursor });
  }

  /** The reads of every poll of one tick, in one UNION ALL statement. */
  const readCoalesced = createTickBatcher<PendingRead, StoredMessage[]>(
    async (reads) => {
      const rows = await guarded(async () => resultRows<MessageRow & { read_index: number | string }>(await pendingReadQuery(knex, reads, clock.now())));
      const byRead: StoredMessage[][] = reads.map(() => []);
      for (const row of rows) byRead[Number(row.read_index)]!.push(toStoredMessage(row));
      return byRead.map((messages) => ({ status: 'fulfilled', value: messages.sort((a, b) => a.seq - b.seq) }));
    },
    // Many concurrent first reads (a restart under thousands of clients) become a few statements.
    { maxBatch: 200 },
  );

  async function readPending(userId: string, cursor: number, limit: number): Promise<DeliveryBatch> {
    const messages = await readCoalesced({ userId, cursor, limit });
    return { messages, cursor: messages.length > 0 ? messages[messages.length - 1]!.seq : cursor };
  }

  async function mailboxSummary(userId: string): Promise<MailboxSummary> {
    return guarded(async () => {
      const row = (await mailboxSummaryQuery(knex, userId, clock.now()).first()) as { pending: number | string; oldest: number | string | null } | undefined;
      return { pending: Number(row?.pending ?? 0), oldestAt: row?.oldest === null || row?.oldest === undefined ? null : Number(row.oldest) };
    });
  }

  /**
   * The receipt pump: in one transaction, the due rows (locked), their receipts inserted into the
   * senders' mailboxes like any publish (sequence, idempotency key `receipt:<id>` under the
   * reserved sender), and the flags cleared. A crash anywhere rolls all of it back, so the next
   * pump makes the receipt; a re-ack finds the message already acked and sets nothing due.
   */
  async function takeDueReceipts(limit: number): Promise<StoredMessage[]> {
    return guarded(async () => {
      // Most calls find nothing: answer that from the index without opening a transaction.
      if (!(await knex(TABLE).where({ receipt_due: 1 }).first('id'))) return [];
      return withDeadlockRetry(() => knex.transaction(async (trx) => {
        let due = trx(TABLE).select('id', 'user_id', 'sender_id', 'acked_at').where({ receipt_due: 1 }).orderBy('id').limit(limit);
        if (dialect === 'mysql') due = due.forUpdate();
        const rows = (await due) as Array<{ id: number | string; user_id: string; sender_id: string; acked_at: number | string | null }>;
        if (rows.length === 0) return [];
        const drafts: MessageDraft[] = rows.map((row) => ({
          userId: row.sender_id,
          senderId: RECEIPT_SENDER,
          clientMessageId: `receipt:${row.id}`,
          body: JSON.stringify({ type: 'receipt', id: Number(row.id), to: row.user_id, status: 'acked', at: new Date(Number(row.acked_at ?? clock.now())).toISOString() }),
        }));
        const insert = sequencedInsert(drafts);
        const receipts = insert.stored(await runInTransaction(trx, insert.statements));
        await trx(TABLE)
          .whereIn(
            'id',
            rows.map((row) => row.id),
          )
          .update({ receipt_due: 0 });
        return receipts;
      }));
    });
  }

  /** Poll answers' high-water marks, folded per window into one UPDATE of the mailboxes. */
  const deliveredCoalesced = createTickBatcher<{ userId: string; seq: number }, void>(
    async (marks) => {
      const highest = new Map<string, number>();
      for (const { userId, seq } of marks) highest.set(userId, Math.max(seq, highest.get(userId) ?? seq));
      const users = [...highest.keys()];
      const cases = users.map(() => 'WHEN ? THEN ?').join(' ');
      const bindings: Array<string | number> = [];
      for (const userId of users) bindings.push(userId, highest.get(userId)!);
      bindings.push(...users);
      const greatest = dialect === 'mysql' ? 'GREATEST' : 'MAX';
      await guarded(() =>
        knex.raw(
          `UPDATE mailboxes SET delivered_seq = ${greatest}(delivered_seq, CASE user_id ${cases} ELSE 0 END) WHERE user_id IN (${users.map(() => '?').join(', ')})`,
          bindings,
        ),
      );
      return marks.map(() => ({ status: 'fulfilled', value: undefined }));
    },
    { maxBatch: 500, windowMs: ACK_WINDOW_MS },
  );

  async function noteDelivered(userId: string, seq: number): Promise<void> {
    await deliveredCoalesced({ userId, seq });
  }

  async function messageStatus(id: number): Promise<MessageStatus | undefined> {
    return guarded(async () => {
      const row = (await knex(TABLE)
        .leftJoin('mailboxes', 'mailboxes.user_id', `${TABLE}.user_id`)
        .where(`${TABLE}.id`, id)
        .first(
          `${TABLE}.id`,
          `${TABLE}.user_id`,
          `${TABLE}.sender_id`,
          `${TABLE}.status`,
          `${TABLE}.seq`,
          `${TABLE}.created_at`,
          `${TABLE}.acked_at`,
          `${TABLE}.expires_at`,
          'mailboxes.delivered_seq',
        )) as
        | {
            id: number | string;
            user_id: string;
            sender_id: string;
            status: string;
            seq: number | string | null;
            created_at: number | string;
            acked_at: number | string | null;
            expires_at: number | string | null;
            delivered_seq: number | string | null;
          }
        | undefined;
      if (!row) return undefined;
      const expiresAt = row.expires_at === null ? null : Number(row.expires_at);
      let status: MessageStatus['status'];
      if (row.status === 'acked') status = 'acked';
      else if (expiresAt !== null && expiresAt <= clock.now()) status = 'expired';
      else status = row.seq !== null && Number(row.seq) <= Number(row.delivered_seq ?? 0) ? 'delivered' : 'pending';
      return {
        id: Number(row.id),
        from: row.sender_id,
        to: row.user_id,
        status,
        createdAt: Number(row.created_at),
        ackedAt: row.acked_at === null ? null : Number(row.acked_at),
        expiresAt,
      };
    });
  }

  /**
   * Deletes at most `limit` rows whose `column` is before `before` (acked ones only, for
   * `acked_at`), oldest first, walking that column's index (`idx_messages_acked_at`,
   * `idx_messages_expires_at`; InnoDB appends id), so each DELETE touches only the rows it
   * removes: no table scan, no long lock. MySQL takes ORDER BY + LIMIT on a DELETE directly;
   * SQLite (built without that option) needs the ids from a subquery.
   */
  async function deleteOldest(column: 'acked_at' | 'expires_at', before: number, limit: number): Promise<number> {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new TypeError('Expected `limit` to be a positive integer');
    // `column` is one of two literals, never input.
    const condition = `${column === 'acked_at' ? "status = 'acked' AND " : ''}${column} < ?`;
    return guarded(async () => {
      if (dialect === 'mysql') {
        const [result] = (await knex.raw(`DELETE FROM ${TABLE} WHERE ${condition} ORDER BY ${column}, id LIMIT ?`, [before, limit])) as [{ affectedRows: number }];
        return result.affectedRows;
      }
      return knex(TABLE)
        .whereIn('id', knex(TABLE).select('id').whereRaw(condition, [before]).orderBy([{ column }, { column: 'id' }]).limit(limit))
        .del();
    });
  }

  async function purgeAcked(ackedBefore: number, limit: number): Promise<number> {
    return deleteOldest('acked_at', ackedBefore, limit);
  }

  /** Like purgeAcked: rows that expired before the cut-off, acked or not. */
  async function purgeExpired(expiredBefore: number, limit: number): Promise<number> {
    return deleteOldest('expires_at', expiredBefore, limit);
  }

  return {
    knex,
    insertMessage,
    insertMessages,
    ackThrough,
    acknowledge,
    readPending,
    mailboxSummary,
    takeDueReceipts,
    noteDelivered,
    messageStatus,
    purgeAcked,
    purgeExpired,
    async ping() {
      await guarded(() => knex.raw('select 1'));
    },
    async close() {
      await Promise.allSettled([insertCoalesced.settle(), acknowledgeCoalesced.settle(), readCoalesced.settle(), deliveredCoalesced.settle()]);
      await knex.destroy();
    },
  };
}

export type KnexStore = MessageStore & RetentionStore & { readonly knex: Knex };

/**
 * createKnex and createKnexStore in one step, for callers that own neither: when the store cannot
 * start (the database is down, a migration fails) the connection pool it opened is closed again.
 *
 * @example
 * const store = await openKnexStore({ mysqlUrl: process.env.MYSQL_URL, sqliteFile: ':memory:' });
 * await store.close(); // closes the pool too
 */
export async function openKnexStore(connection: KnexConnectionOptions, dependencies: { clock?: Clock } = {}, options: KnexStoreOptions = {}): Promise<KnexStore> {
  const knex = createKnex(connection);
  try {
    return await createKnexStore({ knex, ...dependencies }, options);
  } catch (error) {
    await knex.destroy();
    throw error;
  }
}
