/**
 * The durable mailbox. The database is the source of truth; the bus only says "look again".
 *
 * Every message takes the next sequence number (`seq`) of its recipient's mailbox when it is
 * stored, inside the storing transaction and serialised per mailbox, so sequence order is commit
 * order: what any reader sees of a mailbox is always a prefix of it. A cursor is the last `seq` a
 * client received. A poll returns the unacked messages with `seq > cursor` in order; an ack covers
 * `seq <= cursor`. So a cursor the client sends back acks only messages that were in responses it
 * received, whichever process answered them, however many responses were lost, in any order of
 * commits. Reads never write.
 *
 * Statuses: `pending` (stored, not acked) → `acked`.
 */
export interface StoredMessage {
  id: number;
  userId: string;
  senderId: string;
  clientMessageId: string | null;
  /** JSON text exactly as validated at publish time. */
  body: string;
  /** Epoch milliseconds from the injected clock. */
  createdAt: number;
  /** Position in the recipient's mailbox: what a cursor counts. */
  seq: number;
  /** Epoch milliseconds after which it is never delivered; null = never expires. */
  expiresAt: number | null;
}

export interface MessageDraft {
  userId: string;
  senderId: string;
  /** Idempotency key, unique per sender. Absent means "no idempotency". */
  clientMessageId?: string | undefined;
  body: string;
  /** Seconds from storing after which the message is never delivered; absent = never. */
  ttlSeconds?: number | undefined;
  /** Put a receipt in the sender's mailbox when the recipient acks it. */
  receipt?: boolean | undefined;
}

/**
 * The sender id of receipt rows. User ids are 1 to 128 characters, so no user can publish as it
 * (or forge a receipt's idempotency key).
 */
export const RECEIPT_SENDER = '';

export function isReceipt(message: Pick<StoredMessage, 'senderId'>): boolean {
  return message.senderId === RECEIPT_SENDER;
}

/** What the sender of a message can learn about it (GET /v1/messages/{id}). */
export interface MessageStatus {
  id: number;
  from: string;
  to: string;
  status: 'pending' | 'delivered' | 'acked' | 'expired';
  createdAt: number;
  ackedAt: number | null;
  expiresAt: number | null;
}

export interface InsertResult {
  id: number;
  /** True when (senderId, clientMessageId) was already stored: nothing was written. */
  duplicate: boolean;
  /** The row as stored, when this call stored it (not for duplicates; optional for test doubles). */
  message?: StoredMessage;
}

export interface DeliveryBatch {
  /** In mailbox order (`seq`). */
  messages: StoredMessage[];
  /** The last message's `seq`: what the client sends back; unchanged when the batch is empty. */
  cursor: number;
}

export interface MessageStore {
  /** Race-safe idempotent insert: two concurrent identical drafts store one row. */
  insertMessage(draft: MessageDraft): Promise<InsertResult>;
  /**
   * Inserts a batch atomically, in order: if any draft fails (an idempotency conflict), none is
   * stored. Optional for test doubles; without it the engine inserts one by one.
   */
  insertMessages?(drafts: readonly MessageDraft[]): Promise<InsertResult[]>;
  /**
   * Acks every unacked message of the user with `seq <= cursor` and returns how many. A cursor
   * above anything the mailbox ever issued (a database that was reset, a forged value) acks
   * nothing: it cannot stand for messages the client received.
   */
  ackThrough(userId: string, cursor: number): Promise<number>;
  /**
   * `ackThrough` without the count, for the poll path: a store may fold the acks of many polls
   * into one statement. Optional for test doubles; the engine falls back to `ackThrough`.
   */
  acknowledge?(userId: string, cursor: number): Promise<void>;
  /**
   * Up to `limit` unacked messages with `seq > cursor`, in `seq` order, and the cursor that acks
   * exactly them. Writes nothing. A cursor the mailbox never issued reads from the start.
   */
  readPending(userId: string, cursor: number, limit: number): Promise<DeliveryBatch>;
  /**
   * What is waiting for the user: unacked, unexpired messages and the oldest one's time. Optional
   * for test doubles.
   */
  mailboxSummary?(userId: string): Promise<MailboxSummary>;
  /**
   * Turns up to `limit` acked messages whose sender asked for a receipt into receipt rows in the
   * senders' mailboxes (each message exactly once) and returns those rows. Optional for test doubles.
   */
  takeDueReceipts?(limit: number): Promise<StoredMessage[]>;
  /** Records that a poll answer carried the user's mailbox up to `seq`. Optional for test doubles. */
  noteDelivered?(userId: string, seq: number): Promise<void>;
  /** A message's delivery state, for its sender; undefined when there is no such message. */
  messageStatus?(id: number): Promise<MessageStatus | undefined>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface MailboxSummary {
  pending: number;
  /** Epoch milliseconds of the oldest pending message; null when none. */
  oldestAt: number | null;
}

/** Kept apart from MessageStore: only the retention timer needs it, and test doubles need not. */
export interface RetentionStore {
  /**
   * Deletes at most `limit` acked messages whose `acked_at` is before `ackedBefore` (epoch ms),
   * oldest ack first, and returns how many. Bounded so each statement holds its row locks briefly.
   */
  purgeAcked(ackedBefore: number, limit: number): Promise<number>;
  /** Deletes at most `limit` messages that expired before `expiredBefore` (epoch ms), acked or not. */
  purgeExpired(expiredBefore: number, limit: number): Promise<number>;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
