import type { Knex } from 'knex';
import { RECEIPT_SENDER, topicKey, type TopicRead } from '../../core/model.js';
import { dialectOf } from './connection.js';
import { MAILBOXES_TABLE, MESSAGE_COLUMNS, MESSAGES_TABLE as TABLE } from './schema.js';

// The statements of the hot paths, as builders: the store runs them, and the MySQL plan tests
// EXPLAIN exactly what runs.

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
      request.cursor > 0 ? `(CASE WHEN EXISTS (SELECT 1 FROM ${MAILBOXES_TABLE} WHERE user_id = ? AND last_seq >= ?) THEN ? ELSE 0 END)` : '0';
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
    return `(user_id = ? AND seq <= ? AND EXISTS (SELECT 1 FROM ${MAILBOXES_TABLE} WHERE user_id = ? AND last_seq >= ?))`;
  });
  // A receipt falls due with the ack that covers its message, unless the message expired first.
  bindings.splice(1, 0, ackedAt);
  return db.raw(
    `UPDATE ${TABLE} SET status = 'acked', acked_at = ?, receipt_due = CASE WHEN receipt = 1 AND (expires_at IS NULL OR expires_at > ?) THEN 1 ELSE 0 END WHERE status = 'pending' AND (${conditions.join(' OR ')})`,
    bindings,
  );
}

/**
 * Raises each mailbox's `delivered_seq` to the highest mark given for it (poll answers' high-water
 * marks, folded per window): GREATEST keeps a late, lower mark from moving it back.
 */
export function deliveredQuery(db: Knex, highestByUser: ReadonlyMap<string, number>): Knex.Raw {
  const users = [...highestByUser.keys()];
  const cases = users.map(() => 'WHEN ? THEN ?').join(' ');
  const bindings: Array<string | number> = [];
  for (const userId of users) bindings.push(userId, highestByUser.get(userId)!);
  bindings.push(...users);
  const greatest = dialectOf(db) === 'mysql' ? 'GREATEST' : 'MAX';
  return db.raw(
    `UPDATE ${MAILBOXES_TABLE} SET delivered_seq = ${greatest}(delivered_seq, CASE user_id ${cases} ELSE 0 END) WHERE user_id IN (${users.map(() => '?').join(', ')})`,
    bindings,
  );
}

/**
 * The topic reads of one tick in one statement, for each request two UNION ALL members read in
 * the same snapshot: the topic's `mailboxes` row (its head and how far it was trimmed) as a row
 * with `id = 0` (real ids start at 1), then — unless the read is "from now" — its messages after
 * the reader's position, or after the trimmed point when the position fell below it or lies
 * above anything the topic issued. One statement, so the head a reader is told and the messages
 * it gets can never disagree (a trim committed between two statements could hide a reset).
 * Each message member is the same range scan of (user_id, status, seq) as a poll's.
 * Exported so the MySQL plan test EXPLAINs exactly what runs.
 */
export function topicReadQuery(db: Knex, requests: readonly TopicRead[], now: number): Knex.Raw {
  const parts: string[] = [];
  const bindings: Array<string | number> = [];
  const wrap = dialectOf(db) === 'mysql' ? (select: string) => `(${select})` : (select: string, index: number) => `SELECT * FROM (${select}) AS topic_${index}`;
  requests.forEach((request, index) => {
    parts.push(
      wrap(
        `SELECT ${index} AS read_index, 0 AS id, user_id, '' AS sender_id, NULL AS client_msg_id, '' AS body, trimmed_seq AS created_at, last_seq AS seq, NULL AS expires_at FROM ${MAILBOXES_TABLE} WHERE user_id = ?`,
        parts.length,
      ),
    );
    bindings.push(request.key);
    if (request.after === null || request.limit < 1) return;
    parts.push(
      wrap(
        `SELECT ${index} AS read_index, ${MESSAGE_COLUMNS.join(', ')} FROM ${TABLE} WHERE user_id = ? AND status = 'pending' AND seq > (SELECT CASE WHEN ? < trimmed_seq OR ? > last_seq THEN trimmed_seq ELSE ? END FROM ${MAILBOXES_TABLE} WHERE user_id = ?) AND (expires_at IS NULL OR expires_at > ?) ORDER BY seq LIMIT ?`,
        parts.length,
      ),
    );
    bindings.push(request.key, request.after, request.after, request.after, request.key, now, request.limit);
  });
  return db.raw(parts.join(' UNION ALL '), bindings);
}

/** A page of topics (their `mailboxes` rows) after `afterKey`, in key order, for the trim. */
export function topicHeadsQuery(db: Knex, afterKey: string, limit: number): Knex.QueryBuilder {
  return db(MAILBOXES_TABLE)
    .select('user_id', 'last_seq', 'trimmed_seq')
    .where('user_id', 'like', `${TOPIC_KEY_LIKE}`)
    .andWhere('user_id', '>', afterKey)
    .orderBy('user_id')
    .limit(limit);
}

/** `LIKE` pattern of every topic key (`#<name>`; `#` is not a LIKE wildcard). */
const TOPIC_KEY_LIKE = `${topicKey('')}%`;

/**
 * The highest `seq` of a topic's messages created before `createdBefore`: the age part of a trim.
 * Scans that topic's rows of (user_id, status, seq); bounded by its history (TOPIC_HISTORY_MAX).
 */
export function topicAgeCutQuery(db: Knex, key: string, createdBefore: number): Knex.QueryBuilder {
  return db(TABLE).max({ cut: 'seq' }).where({ user_id: key, status: 'pending' }).andWhere('created_at', '<', createdBefore);
}

/** A topic's oldest stored message (its `seq` and `created_at`), from the index's first entry. */
export function topicOldestQuery(db: Knex, key: string): Knex.QueryBuilder {
  return db(TABLE).select('seq', 'created_at').where({ user_id: key, status: 'pending' }).orderBy('seq').limit(1);
}

/**
 * Takes at most `limit` of a topic's messages with `seq <= through` out of its history, oldest
 * first, on the (user_id, status, seq) index. They are not deleted but marked as left (`acked`,
 * `acked_at` now), so their idempotency keys live on: a publisher that retries after its message
 * was trimmed is answered the first id and seq, not stored twice. Retention deletes them with the
 * acked rows, after RETENTION_ACKED_HOURS. MySQL takes ORDER BY + LIMIT on an UPDATE; SQLite
 * needs the ids. The ORDER BY names the whole index prefix although user_id and status are fixed:
 * MariaDB's single-table UPDATE/DELETE does not drop equality-bound columns from it, so `ORDER BY
 * seq` alone reads the topic's whole range below `through` and filesorts it (EXPLAIN in
 * test/store/mysql-plans).
 */
export function topicTrimQuery(db: Knex, key: string, through: number, limit: number, now: number): Knex.Raw | Knex.QueryBuilder {
  if (dialectOf(db) === 'mysql') {
    return db.raw(`UPDATE ${TABLE} SET status = 'acked', acked_at = ? WHERE user_id = ? AND status = 'pending' AND seq <= ? ORDER BY user_id, status, seq LIMIT ?`, [
      now,
      key,
      through,
      limit,
    ]);
  }
  return db(TABLE)
    .whereIn('id', db(TABLE).select('id').where({ user_id: key, status: 'pending' }).andWhere('seq', '<=', through).orderBy('seq').limit(limit))
    .update({ status: 'acked', acked_at: now });
}
