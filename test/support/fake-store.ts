import { isReceipt, receiptDraft, systemClock, topicOfKey, topicPage, topicReadStart, type Clock, type InsertResult, type MessageDraft, type MessageStatus, type StoredMessage } from '../../src/core/model.js';
import { IdempotencyConflictError } from '../../src/errors.js';
import type { MessageStore, RetentionStore } from '../../src/store/types.js';

interface FakeRow extends StoredMessage {
  status: 'pending' | 'acked';
  ackedAt: number | null;
  receipt: boolean;
  receiptDue: boolean;
}

export type FakeStore = MessageStore & RetentionStore & { readonly rows: readonly StoredMessage[] };

/**
 * The one in-memory MessageStore for tests that need a store without a database, or one whose
 * behaviour a test bends (`{ ...createFakeStore(), readPending: … }`). It keeps the contract the
 * knex store keeps — per-mailbox sequences, idempotency per sender, acks only through issued
 * cursors, expiry, receipts — and runs the same contract suite (test/store/contract.test.ts).
 *
 * @example
 * const store = createFakeStore({ clock: { now: () => now } });
 */
export function createFakeStore(dependencies: { clock?: Clock } = {}): FakeStore {
  const clock = dependencies.clock ?? systemClock;
  const rows: FakeRow[] = [];
  const lastSeq = new Map<string, number>();
  const deliveredSeq = new Map<string, number>();
  const trimmedSeq = new Map<string, number>();
  let nextId = 1;

  const live = (row: FakeRow, now: number) => row.expiresAt === null || row.expiresAt > now;
  const issued = (userId: string, cursor: number) => (lastSeq.get(userId) ?? 0) >= cursor;

  function findDuplicate(draft: MessageDraft): InsertResult | undefined {
    if (draft.clientMessageId === undefined) return undefined;
    const existing = rows.find((row) => row.senderId === draft.senderId && row.clientMessageId === draft.clientMessageId);
    if (!existing) return undefined;
    if (existing.userId !== draft.userId || existing.body !== draft.body) throw new IdempotencyConflictError(draft.clientMessageId);
    return { id: existing.id, duplicate: true, seq: existing.seq };
  }

  function store(draft: MessageDraft): StoredMessage {
    const createdAt = clock.now();
    const seq = (lastSeq.get(draft.userId) ?? 0) + 1;
    lastSeq.set(draft.userId, seq);
    const row: FakeRow = {
      id: nextId++,
      userId: draft.userId,
      senderId: draft.senderId,
      clientMessageId: draft.clientMessageId ?? null,
      body: draft.body,
      createdAt,
      seq,
      expiresAt: draft.ttlSeconds === undefined ? null : createdAt + draft.ttlSeconds * 1000,
      status: 'pending',
      ackedAt: null,
      receipt: draft.receipt ?? false,
      receiptDue: false,
    };
    rows.push(row);
    return publicView(row);
  }

  function publicView(row: FakeRow): StoredMessage {
    const { id, userId, senderId, clientMessageId, body, createdAt, seq, expiresAt } = row;
    return { id, userId, senderId, clientMessageId, body, createdAt, seq, expiresAt };
  }

  /** All or nothing, like one transaction: conflicts are found before anything is stored. */
  function insertAll(drafts: readonly MessageDraft[]): InsertResult[] {
    const seen = new Map<string, MessageDraft>();
    for (const draft of drafts) {
      findDuplicate(draft);
      if (draft.clientMessageId === undefined) continue;
      const key = `${draft.senderId}\n${draft.clientMessageId}`;
      const earlier = seen.get(key);
      if (earlier && (earlier.userId !== draft.userId || earlier.body !== draft.body)) throw new IdempotencyConflictError(draft.clientMessageId);
      seen.set(key, draft);
    }
    return drafts.map((draft): InsertResult => {
      const duplicate = findDuplicate(draft);
      if (duplicate) return duplicate;
      const message = store(draft);
      return { id: message.id, duplicate: false, message };
    });
  }

  function ack(userId: string, cursor: number): number {
    if (cursor <= 0 || !issued(userId, cursor)) return 0;
    const now = clock.now();
    let acked = 0;
    for (const row of rows) {
      if (row.userId !== userId || row.status !== 'pending' || row.seq > cursor) continue;
      row.status = 'acked';
      row.ackedAt = now;
      row.receiptDue = row.receipt && live(row, now);
      acked += 1;
    }
    return acked;
  }

  function purge(shouldGo: (row: FakeRow) => boolean, limit: number): number {
    let purged = 0;
    for (let index = 0; index < rows.length && purged < limit; ) {
      if (shouldGo(rows[index]!)) {
        rows.splice(index, 1);
        purged += 1;
      } else index += 1;
    }
    return purged;
  }

  return {
    get rows() {
      return rows.map(publicView);
    },
    async insertMessage(draft) {
      return insertAll([draft])[0]!;
    },
    async insertMessages(drafts) {
      return insertAll(drafts);
    },
    async ackThrough(userId, cursor) {
      return ack(userId, cursor);
    },
    async acknowledge(userId, cursor) {
      ack(userId, cursor);
    },
    async readPending(userId, cursor, limit) {
      const now = clock.now();
      const after = issued(userId, cursor) ? cursor : 0;
      const messages = rows
        .filter((row) => row.userId === userId && row.status === 'pending' && row.seq > after && live(row, now))
        .sort((a, b) => a.seq - b.seq)
        .slice(0, limit)
        .map(publicView);
      return { messages, cursor: messages.length > 0 ? messages[messages.length - 1]!.seq : cursor };
    },
    async readTopic(read) {
      const now = clock.now();
      const head = { lastSeq: lastSeq.get(read.key) ?? 0, trimmedSeq: trimmedSeq.get(read.key) ?? 0 };
      if (read.after === null) return topicPage(null, head, []);
      const { from } = topicReadStart(read.after, head);
      const messages = rows
        .filter((row) => row.userId === read.key && row.status === 'pending' && row.seq > from && live(row, now))
        .sort((a, b) => a.seq - b.seq)
        .slice(0, read.limit)
        .map(publicView);
      return topicPage(read.after, head, messages);
    },
    async mailboxSummary(userId) {
      const now = clock.now();
      const waiting = rows.filter((row) => row.userId === userId && row.status === 'pending' && !isReceipt(row) && live(row, now));
      return { pending: waiting.length, oldestAt: waiting.length === 0 ? null : Math.min(...waiting.map((row) => row.createdAt)) };
    },
    async takeDueReceipts(limit) {
      const due = rows.filter((row) => row.receiptDue).slice(0, limit);
      for (const row of due) row.receiptDue = false;
      return due.map((row) => store(receiptDraft({ id: row.id, userId: row.userId, senderId: row.senderId, ackedAt: row.ackedAt ?? clock.now() })));
    },
    async noteDelivered(userId, seq) {
      deliveredSeq.set(userId, Math.max(seq, deliveredSeq.get(userId) ?? 0));
    },
    async messageStatus(id) {
      const row = rows.find((candidate) => candidate.id === id);
      if (!row) return undefined;
      let status: MessageStatus['status'];
      if (row.status === 'acked') status = 'acked';
      else if (!live(row, clock.now())) status = 'expired';
      else status = row.seq <= (deliveredSeq.get(row.userId) ?? 0) ? 'delivered' : 'pending';
      return { id: row.id, from: row.senderId, to: row.userId, status, createdAt: row.createdAt, ackedAt: row.ackedAt, expiresAt: row.expiresAt };
    },
    async purgeAcked(ackedBefore, limit) {
      return purge((row) => row.status === 'acked' && row.ackedAt !== null && row.ackedAt < ackedBefore, limit);
    },
    async purgeExpired(expiredBefore, limit) {
      return purge((row) => row.expiresAt !== null && row.expiresAt < expiredBefore, limit);
    },
    async trimTopics(historyMax, createdBefore, limit) {
      if (!(Number.isInteger(historyMax) && historyMax >= 1)) throw new TypeError('Expected `historyMax` to be a positive integer');
      if (!(Number.isInteger(limit) && limit >= 1)) throw new TypeError('Expected `limit` to be a positive integer');
      let trimmed = 0;
      for (const key of [...lastSeq.keys()].filter((candidate) => topicOfKey(candidate) !== undefined).sort()) {
        const stored = rows.filter((row) => row.userId === key && row.status === 'pending').sort((a, b) => a.seq - b.seq);
        if (stored.length === 0) continue;
        const byAge = stored.filter((row) => row.createdAt < createdBefore).reduce((highest, row) => Math.max(highest, row.seq), 0);
        const cut = Math.max(trimmedSeq.get(key) ?? 0, lastSeq.get(key)! - historyMax, byAge);
        if (stored[0]!.seq > cut) continue;
        trimmedSeq.set(key, cut);
        // Out of the history, but kept (as acked) for idempotency until purgeAcked deletes them.
        for (const row of stored) {
          if (row.seq > cut || trimmed >= limit) break;
          row.status = 'acked';
          row.ackedAt = clock.now();
          trimmed += 1;
        }
        if (trimmed >= limit) break;
      }
      return trimmed;
    },
    async ping() {},
    async close() {},
  };
}
