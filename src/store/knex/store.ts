import type { Knex } from 'knex';
import { receiptDraft, systemClock, topicPage, type Clock, type TopicHead, type TopicPage, type TopicRead, type DeliveryBatch, type InsertResult, type MailboxSummary, type MessageDraft, type MessageStatus, type StoredMessage } from '../../core/model.js';
import { IdempotencyConflictError } from '../../errors.js';
import { createTickBatcher } from '../../batching/tick-batcher.js';
import { migrateToLatest } from '../migrations.js';
import type { MessageStore, RetentionStore } from '../types.js';
import { createKnex, dialectOf, type KnexConnectionOptions } from './connection.js';
import { classifyStoreError, isUniqueViolation, withDeadlockRetry, withUnavailableAsRetryable } from './driver-errors.js';
import { ackQuery, deliveredQuery, mailboxSummaryQuery, pendingReadQuery, topicAgeCutQuery, topicHeadsQuery, topicOldestQuery, topicReadQuery, topicTrimQuery, type AckRequest, type PendingRead } from './queries.js';
import { MAILBOXES_TABLE, MESSAGE_COLUMNS, MESSAGES_TABLE as TABLE, SEQ_FLOOR_SETTING, SETTINGS_TABLE, affectedRows, resultRows, toStoredMessage, type MessageRow } from './schema.js';
import { createSequencedInsert, runInTransaction, runScript } from './sequenced-insert.js';

/** How long poll acks (and delivery marks) are collected before their UPDATE goes out. */
const ACK_WINDOW_MS = 20;

export interface KnexStoreOptions {
  /** Run migrations before first use (default true). */
  migrate?: boolean;
}

export type KnexStore = MessageStore & RetentionStore & { readonly knex: Knex };

/**
 * MessageStore on knex, for MySQL/MariaDB (production) and SQLite (embedded default).
 *
 * @example
 * const store = await createKnexStore({ knex: createKnex({ sqliteFile: ':memory:' }) });
 * const { id } = await store.insertMessage({ userId: 'bob', senderId: 'alice', body: '"hi"' });
 */
export async function createKnexStore(dependencies: { knex: Knex; clock?: Clock }, options: KnexStoreOptions = {}): Promise<KnexStore> {
  const { knex } = dependencies;
  const clock = dependencies.clock ?? systemClock;
  const dialect = dialectOf(knex);
  if (options.migrate ?? true) await withUnavailableAsRetryable(() => migrateToLatest(knex));
  const seqFloor = await withUnavailableAsRetryable(readSeqFloor);
  const planSequencedInsert = createSequencedInsert({
    dialect,
    seqFloor,
    consecutiveIds: dialect === 'sqlite' || (await withUnavailableAsRetryable(readAutoincLockMode)) <= 1,
    clock,
  });

  async function readSeqFloor(): Promise<number> {
    const row = (await knex(SETTINGS_TABLE).where({ name: SEQ_FLOOR_SETTING }).first('value')) as { value: number | string } | undefined;
    return Number(row?.value ?? 0);
  }

  async function readAutoincLockMode(): Promise<number> {
    const [rows] = (await knex.raw('SELECT @@innodb_autoinc_lock_mode AS mode')) as [Array<{ mode: number | string }>];
    return Number(rows[0]?.mode ?? 2);
  }

  async function findByClientId(db: Knex | Knex.Transaction, senderId: string, clientMessageId: string): Promise<MessageRow | undefined> {
    return db(TABLE).select(MESSAGE_COLUMNS).where({ sender_id: senderId, client_msg_id: clientMessageId }).first();
  }

  /** The stored row for a repeated (sender, client id), or a conflict when it was a different message. */
  function asDuplicate(existing: MessageRow, draft: MessageDraft): InsertResult {
    if (existing.user_id !== draft.userId || existing.body !== draft.body) throw new IdempotencyConflictError(draft.clientMessageId!);
    return { id: Number(existing.id), duplicate: true, seq: Number(existing.seq) };
  }

  /**
   * Group commit: every draft of every publish that arrived in one tick, in one transaction. On
   * MySQL the whole transaction is one round trip. Throws (and stores nothing) on any unique
   * violation: the caller then replays each publish on its own, where repeats are told apart from
   * conflicts.
   */
  async function insertGroup(drafts: readonly MessageDraft[]): Promise<StoredMessage[]> {
    const plan = planSequencedInsert(drafts);
    if (dialect === 'mysql') {
      const results = await runScript(knex, [{ sql: 'START TRANSACTION', bindings: [] }, ...plan.statements, { sql: 'COMMIT', bindings: [] }]);
      return plan.stored(results.slice(1, -1));
    }
    return knex.transaction(async (trx) => plan.stored(await runInTransaction(trx, plan.statements)));
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
          const plan = planSequencedInsert([draft]);
          const [message] = plan.stored(await runInTransaction(trx, plan.statements));
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
          value: publish.map((): InsertResult => {
            const message = stored[next++]!;
            return { id: message.id, duplicate: false, message };
          }),
        }));
      } catch (error) {
        if (!isUniqueViolation(error)) throw classifyStoreError(error);
      }
      return Promise.allSettled(publishes.map((publish) => withUnavailableAsRetryable(() => withDeadlockRetry(() => insertAlone(publish)))));
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
    return withUnavailableAsRetryable(async () => affectedRows(await ackQuery(knex, [{ userId, cursor }], clock.now())));
  }

  /**
   * The acks of polls, folded into one UPDATE per window. Nobody waits on them: a read asks for
   * `seq > cursor` itself, so an ack that lands a few milliseconds later changes no answer; and an
   * ack lost with the process is covered by the client's next, higher cursor.
   */
  const acknowledgeCoalesced = createTickBatcher<AckRequest, void>(
    async (requests) => {
      const unique = new Map(requests.map((request) => [`${request.cursor}:${request.userId}`, request]));
      await withUnavailableAsRetryable(() => ackQuery(knex, [...unique.values()], clock.now()));
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
      const rows = await withUnavailableAsRetryable(async () =>
        resultRows<MessageRow & { read_index: number | string }>(await pendingReadQuery(knex, reads, clock.now())),
      );
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

  /**
   * The topic reads of one tick in one statement (topicReadQuery). The engine already shares one
   * read among the readers waiting at the same position, so these are distinct reads.
   */
  const topicReadCoalesced = createTickBatcher<TopicRead, TopicPage>(
    async (reads) => {
      const rows = await withUnavailableAsRetryable(async () =>
        resultRows<MessageRow & { read_index: number | string }>(await topicReadQuery(knex, reads, clock.now())),
      );
      const heads: TopicHead[] = reads.map(() => ({ lastSeq: 0, trimmedSeq: 0 }));
      const byRead: StoredMessage[][] = reads.map(() => []);
      for (const row of rows) {
        const index = Number(row.read_index);
        // The head member of the statement: id 0, `seq` the last issued, `created_at` the trimmed point.
        if (Number(row.id) === 0) heads[index] = { lastSeq: Number(row.seq), trimmedSeq: Number(row.created_at) };
        else byRead[index]!.push(toStoredMessage(row));
      }
      return reads.map((read, index) => ({ status: 'fulfilled', value: topicPage(read.after, heads[index]!, byRead[index]!.sort((a, b) => a.seq - b.seq)) }));
    },
    { maxBatch: 200 },
  );

  async function mailboxSummary(userId: string): Promise<MailboxSummary> {
    return withUnavailableAsRetryable(async () => {
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
    return withUnavailableAsRetryable(async () => {
      // Most calls find nothing: answer that from the index without opening a transaction.
      if (!(await knex(TABLE).where({ receipt_due: 1 }).first('id'))) return [];
      return withDeadlockRetry(() =>
        knex.transaction(async (trx) => {
          let due = trx(TABLE).select('id', 'user_id', 'sender_id', 'acked_at').where({ receipt_due: 1 }).orderBy('id').limit(limit);
          if (dialect === 'mysql') due = due.forUpdate();
          const rows = (await due) as Array<{ id: number | string; user_id: string; sender_id: string; acked_at: number | string | null }>;
          if (rows.length === 0) return [];
          const plan = planSequencedInsert(
            rows.map((row) => receiptDraft({ id: Number(row.id), userId: row.user_id, senderId: row.sender_id, ackedAt: Number(row.acked_at ?? clock.now()) })),
          );
          const receipts = plan.stored(await runInTransaction(trx, plan.statements));
          await trx(TABLE)
            .whereIn(
              'id',
              rows.map((row) => row.id),
            )
            .update({ receipt_due: 0 });
          return receipts;
        }),
      );
    });
  }

  /** Poll answers' high-water marks, folded per window into one UPDATE of the mailboxes. */
  const deliveredCoalesced = createTickBatcher<{ userId: string; seq: number }, void>(
    async (marks) => {
      const highest = new Map<string, number>();
      for (const { userId, seq } of marks) highest.set(userId, Math.max(seq, highest.get(userId) ?? seq));
      await withUnavailableAsRetryable(() => deliveredQuery(knex, highest));
      return marks.map(() => ({ status: 'fulfilled', value: undefined }));
    },
    { maxBatch: 500, windowMs: ACK_WINDOW_MS },
  );

  async function noteDelivered(userId: string, seq: number): Promise<void> {
    await deliveredCoalesced({ userId, seq });
  }

  async function messageStatus(id: number): Promise<MessageStatus | undefined> {
    return withUnavailableAsRetryable(async () => {
      const row = (await knex(TABLE)
        .leftJoin(MAILBOXES_TABLE, `${MAILBOXES_TABLE}.user_id`, `${TABLE}.user_id`)
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
          `${MAILBOXES_TABLE}.delivered_seq`,
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
    return withUnavailableAsRetryable(async () => {
      if (dialect === 'mysql') {
        const [result] = (await knex.raw(`DELETE FROM ${TABLE} WHERE ${condition} ORDER BY ${column}, id LIMIT ?`, [before, limit])) as [{ affectedRows: number }];
        return result.affectedRows;
      }
      return knex(TABLE)
        .whereIn('id', knex(TABLE).select('id').whereRaw(condition, [before]).orderBy([{ column }, { column: 'id' }]).limit(limit))
        .del();
    });
  }

  /** Where the next trim call resumes: topics are walked in key order, a page at a time. */
  let trimResumeKey = '';
  const TRIM_TOPICS_PAGE = 200;

  async function trimTopics(historyMax: number, createdBefore: number, limit: number): Promise<number> {
    if (!(Number.isInteger(historyMax) && historyMax >= 1)) throw new TypeError('Expected `historyMax` to be a positive integer');
    if (!(Number.isInteger(limit) && limit >= 1)) throw new TypeError('Expected `limit` to be a positive integer');
    return withUnavailableAsRetryable(async () => {
      let trimmed = 0;
      for (;;) {
        const topics = (await topicHeadsQuery(knex, trimResumeKey, TRIM_TOPICS_PAGE)) as Array<{ user_id: string; last_seq: number | string; trimmed_seq: number | string }>;
        for (const topic of topics) {
          const budget = limit - trimmed;
          const taken = await trimTopic(topic.user_id, { lastSeq: Number(topic.last_seq), trimmedSeq: Number(topic.trimmed_seq) }, historyMax, createdBefore, budget);
          trimmed += taken;
          // A topic that used the whole budget may have more to go: the next call starts with it.
          if (taken >= budget) return trimmed;
          trimResumeKey = topic.user_id;
        }
        if (topics.length < TRIM_TOPICS_PAGE) {
          trimResumeKey = '';
          return trimmed;
        }
      }
    });
  }

  async function trimTopic(key: string, head: TopicHead, historyMax: number, createdBefore: number, budget: number): Promise<number> {
    const oldest = (await topicOldestQuery(knex, key).first()) as { seq: number | string; created_at: number | string } | undefined;
    if (!oldest) return 0;
    let cut = Math.max(head.trimmedSeq, head.lastSeq - historyMax);
    if (Number(oldest.created_at) < createdBefore) {
      const row = (await topicAgeCutQuery(knex, key, createdBefore).first()) as { cut: number | string | null } | undefined;
      cut = Math.max(cut, Number(row?.cut ?? 0));
    }
    if (Number(oldest.seq) > cut) return 0;
    if (cut > head.trimmedSeq) {
      // Committed before any row goes: a read in between sees the reset, never a silent gap.
      const greatest = dialect === 'mysql' ? 'GREATEST' : 'MAX';
      await knex(MAILBOXES_TABLE).where({ user_id: key }).update({ trimmed_seq: knex.raw(`${greatest}(trimmed_seq, ?)`, [cut]) });
    }
    const result = await topicTrimQuery(knex, key, cut, budget, clock.now());
    return typeof result === 'number' ? result : affectedRows(result);
  }

  return {
    knex,
    insertMessage,
    insertMessages,
    ackThrough,
    acknowledge,
    readPending,
    readTopic: (read) => topicReadCoalesced(read),
    mailboxSummary,
    takeDueReceipts,
    noteDelivered,
    messageStatus,
    purgeAcked: (ackedBefore, limit) => deleteOldest('acked_at', ackedBefore, limit),
    /** Like purgeAcked: rows that expired before the cut-off, acked or not. */
    purgeExpired: (expiredBefore, limit) => deleteOldest('expires_at', expiredBefore, limit),
    trimTopics,
    async ping() {
      await withUnavailableAsRetryable(() => knex.raw('select 1'));
    },
    async close() {
      await Promise.allSettled([insertCoalesced.settle(), acknowledgeCoalesced.settle(), readCoalesced.settle(), topicReadCoalesced.settle(), deliveredCoalesced.settle()]);
      await knex.destroy();
    },
  };
}

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
