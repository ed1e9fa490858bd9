import type { DeliveryBatch, InsertResult, MailboxSummary, MessageDraft, MessageStatus, StoredMessage, TopicPage, TopicRead } from '../core/model.js';

/**
 * The durable mailbox, as the engine uses it (the model is in core/model.ts). Every method is
 * required: test/support/fake-store.ts is the one in-memory implementation besides the knex store,
 * and both run the same contract suite.
 */
export interface MessageStore {
  /** Race-safe idempotent insert: two concurrent identical drafts store one row. */
  insertMessage(draft: MessageDraft): Promise<InsertResult>;
  /**
   * Inserts a batch atomically, in order: if any draft fails (an idempotency conflict), none is
   * stored.
   */
  insertMessages(drafts: readonly MessageDraft[]): Promise<InsertResult[]>;
  /**
   * Acks every unacked message of the user with `seq <= cursor` and returns how many. A cursor
   * above anything the mailbox ever issued (a database that was reset, a forged value) acks
   * nothing: it cannot stand for messages the client received.
   */
  ackThrough(userId: string, cursor: number): Promise<number>;
  /**
   * `ackThrough` without the count, for the poll path: a store may fold the acks of many polls
   * into one statement.
   */
  acknowledge(userId: string, cursor: number): Promise<void>;
  /**
   * Up to `limit` unacked messages with `seq > cursor`, in `seq` order, and the cursor that acks
   * exactly them. Writes nothing. A cursor the mailbox never issued reads from the start.
   */
  readPending(userId: string, cursor: number, limit: number): Promise<DeliveryBatch>;
  /**
   * A topic's messages after the reader's position (`topicPage`): up to `limit` unexpired ones in
   * `seq` order, its head for "from now", and `earliest` when the position fell outside the
   * retained history. The head and the messages come from one snapshot. Writes nothing.
   */
  readTopic(read: TopicRead): Promise<TopicPage>;
  /** What is waiting for the user: unacked, unexpired messages (not receipts) and the oldest one's time. */
  mailboxSummary(userId: string): Promise<MailboxSummary>;
  /**
   * Turns up to `limit` acked messages whose sender asked for a receipt into receipt rows
   * (`receiptDraft`) in the senders' mailboxes, each message exactly once, and returns those rows.
   */
  takeDueReceipts(limit: number): Promise<StoredMessage[]>;
  /** Records that a poll answer carried the user's mailbox up to `seq`. */
  noteDelivered(userId: string, seq: number): Promise<void>;
  /** A message's delivery state, for its sender; undefined when there is no such message. */
  messageStatus(id: number): Promise<MessageStatus | undefined>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Kept apart from MessageStore: only the retention timer needs it. */
export interface RetentionStore {
  /**
   * Deletes at most `limit` acked messages whose `acked_at` is before `ackedBefore` (epoch ms),
   * oldest ack first, and returns how many. Bounded so each statement holds its row locks briefly.
   */
  purgeAcked(ackedBefore: number, limit: number): Promise<number>;
  /** Deletes at most `limit` messages that expired before `expiredBefore` (epoch ms), acked or not. */
  purgeExpired(expiredBefore: number, limit: number): Promise<number>;
  /**
   * Trims topics' histories to their last `historyMax` messages and to those created at or after
   * `createdBefore` (epoch ms), whichever keeps fewer, taking at most `limit` messages out, and
   * returns how many. Each topic's trimmed point is raised before its messages go, so a reader
   * whose position falls below it is told (a reset), never left to skip messages silently.
   * Trimmed messages are never read again but keep their idempotency keys until `purgeAcked`
   * deletes them (as if acked when trimmed): a retried publish is still known as a repeat. A
   * call that stops at `limit` resumes where it stopped on the next call.
   */
  trimTopics(historyMax: number, createdBefore: number, limit: number): Promise<number>;
}
