import type { Knex } from 'knex';
import type { Clock, MessageDraft, StoredMessage } from '../../core/model.js';
import type { DatabaseDialect } from './connection.js';
import { MAILBOXES_TABLE, MESSAGES_TABLE, resultRows } from './schema.js';

/** One SQL statement and its placeholder values. */
export interface Statement {
  sql: string;
  bindings: Array<string | number | null>;
}

/** The statements that store drafts in sequence, and how to read the stored rows from their results. */
export interface SequencedInsertPlan {
  statements: Statement[];
  stored(results: readonly unknown[]): StoredMessage[];
}

export interface SequencedInsertSettings {
  dialect: DatabaseDialect;
  /** Where mailbox sequences start (the `seq_floor` setting). */
  seqFloor: number;
  /**
   * Whether a multi-row INSERT gets consecutive ids (MySQL auto-increment lock modes 0 and 1;
   * SQLite has one writer). Under interleaved mode 2 each row is inserted alone.
   */
  consecutiveIds: boolean;
  clock: Clock;
}

/**
 * The sequenced insert: for a list of drafts, the statements that reserve each recipient's next
 * sequence numbers, insert the rows and read the new heads, all inside one transaction (run as
 * one script on MySQL: one round trip). Pure: it builds statements and reads results, so it is
 * testable without a database.
 *
 * @example
 * const planInsert = createSequencedInsert({ dialect: 'mysql', seqFloor: 0, consecutiveIds: true, clock: systemClock });
 * const plan = planInsert([{ userId: 'bob', senderId: 'alice', body: '"hi"' }]);
 * const stored = plan.stored(await runInTransaction(trx, plan.statements));
 */
export function createSequencedInsert(settings: SequencedInsertSettings): (drafts: readonly MessageDraft[]) => SequencedInsertPlan {
  const { dialect, seqFloor, consecutiveIds, clock } = settings;

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
          ? `INSERT INTO ${MAILBOXES_TABLE} (user_id, last_seq) VALUES ${values} ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq) - ?`
          : `INSERT INTO ${MAILBOXES_TABLE} (user_id, last_seq) VALUES ${values} ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq - ?`,
      bindings,
    };
  }

  /**
   * Rows of drafts whose mailboxes were just advanced by `reserveSequences` in the same
   * transaction. Each row's `seq` is read from its (locked) mailbox row by the INSERT itself: the
   * k-th of n drafts to one mailbox takes last_seq - (n - 1 - k), so no round trip is needed to
   * learn the counters first.
   */
  function sequencedRows(drafts: readonly MessageDraft[], offsets: readonly number[], createdAt: number): Statement[] {
    return drafts.map((draft, index) => ({
      sql: `(?, ?, ?, ?, 'pending', ?, ?, ?, (SELECT last_seq FROM ${MAILBOXES_TABLE} WHERE user_id = ?) - ?)`,
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

  /** The id of each row of a multi-row INSERT: mysql2 reports the first, SQLite the last. */
  function insertedIds(response: unknown, rows: number): number[] {
    // knex.raw on mysql2 answers [header, fields]; a script's results are the headers.
    const result = Array.isArray(response) ? response[0] : response;
    const reported = dialect === 'mysql' ? Number((result as { insertId: number }).insertId) : Number((result as { lastInsertRowid: number }).lastInsertRowid);
    const first = dialect === 'mysql' ? reported : reported - rows + 1;
    return Array.from({ length: rows }, (_, index) => first + index);
  }

  return function planSequencedInsert(drafts) {
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
  };
}

function countByRecipient(drafts: readonly MessageDraft[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const draft of drafts) counts.set(draft.userId, (counts.get(draft.userId) ?? 0) + 1);
  return counts;
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

function insertRows(rows: readonly Statement[]): Statement {
  return {
    sql: `INSERT INTO ${MESSAGES_TABLE} (user_id, sender_id, client_msg_id, body, status, created_at, expires_at, receipt, seq) VALUES ${rows.map((row) => row.sql).join(', ')}`,
    bindings: rows.flatMap((row) => row.bindings),
  };
}

function readHeads(users: readonly string[]): Statement {
  return { sql: `SELECT user_id, last_seq FROM ${MAILBOXES_TABLE} WHERE user_id IN (${users.map(() => '?').join(', ')})`, bindings: [...users] };
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

/** The part of a mysql2 connection (callback API) that scripts use. */
interface ScriptConnection {
  query(options: string | { sql: string; values?: unknown[] }, callback: (error: Error | null, results?: unknown) => void): void;
}

/**
 * MySQL: statements sent as one script in one round trip on one pooled connection. A failing
 * statement stops the script where it is, so an open transaction is rolled back before the
 * connection goes back to the pool.
 */
export async function runScript(knex: Knex, statements: readonly Statement[]): Promise<unknown[]> {
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

/** The statements one by one in an open transaction, each result in order. */
export async function runInTransaction(trx: Knex.Transaction, statements: readonly Statement[]): Promise<unknown[]> {
  const results: unknown[] = [];
  for (const statement of statements) results.push(await trx.raw(statement.sql, statement.bindings));
  return results;
}
