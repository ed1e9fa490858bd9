/**
 * The durable mailbox. The database is the source of truth; the bus only says "look again".
 *
 * Delivery states: `pending` (stored, never sent) → `delivered` (sent in at least one poll
 * response, stamped with that response's cursor) → `acked` (the client sent back a cursor at
 * least as large as the stamp). Acking by stamp rather than by message id is what keeps a late
 * commit safe: a row with a lower id that becomes visible after a higher id was acked is still
 * pending, so the next poll delivers it instead of acking it unseen.
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
}

export interface MessageDraft {
  userId: string;
  senderId: string;
  /** Idempotency key, unique per sender. Absent means "no idempotency". */
  clientMessageId?: string | undefined;
  body: string;
}

export interface InsertResult {
  id: number;
  /** True when (senderId, clientMessageId) was already stored: nothing was written. */
  duplicate: boolean;
}

export interface DeliveryBatch {
  /** In id order. */
  messages: StoredMessage[];
  /** What the client sends back to acknowledge this batch; unchanged when the batch is empty. */
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
  /** Marks as acked every `delivered` row of the user whose delivery stamp is ≤ cursor. */
  ackThrough(userId: string, cursor: number): Promise<number>;
  /**
   * Returns up to `limit` unacked messages (redeliveries and new ones) in id order, marks them
   * delivered and stamps them with the returned cursor, which is greater than `cursor`.
   */
  deliverPending(userId: string, cursor: number, limit: number): Promise<DeliveryBatch>;
  /** Throws when the database cannot answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Kept apart from MessageStore: only the retention timer needs it, and test doubles need not. */
export interface RetentionStore {
  /**
   * Deletes at most `limit` acked messages whose `acked_at` is before `ackedBefore` (epoch ms),
   * oldest ack first, and returns how many. Bounded so each statement holds its row locks briefly.
   */
  purgeAcked(ackedBefore: number, limit: number): Promise<number>;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
