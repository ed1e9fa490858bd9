/**
 * What a message is, for every layer: the engine, the HTTP routes and the stores speak these types.
 *
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

/** The message an ack made a receipt due for. */
export interface AckedMessage {
  id: number;
  /** Its recipient, who acked it. */
  userId: string;
  /** Its sender, whose mailbox the receipt goes to. */
  senderId: string;
  /** Epoch milliseconds. */
  ackedAt: number;
}

/**
 * The receipt put in the sender's mailbox for an acked message: a draft like any publish, under
 * the reserved sender, with an idempotency key no user can send (`receipt:<id>`), so a receipt is
 * made once however often the pump runs. Its body is the wire JSON clients parse.
 */
export function receiptDraft(acked: AckedMessage): MessageDraft {
  return {
    userId: acked.senderId,
    senderId: RECEIPT_SENDER,
    clientMessageId: `receipt:${acked.id}`,
    body: JSON.stringify({ type: 'receipt', id: acked.id, to: acked.userId, status: 'acked', at: new Date(acked.ackedAt).toISOString() }),
  };
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

/** A publish's outcome: the row this call stored, or the id (and `seq`) of the one an earlier call stored. */
export type InsertResult =
  | { id: number; duplicate: false; message: StoredMessage }
  /** (senderId, clientMessageId) was already stored: nothing was written. */
  | { id: number; duplicate: true; seq: number; message?: undefined };

export interface DeliveryBatch {
  /** In mailbox order (`seq`). */
  messages: StoredMessage[];
  /** The last message's `seq`: what the client sends back; unchanged when the batch is empty. */
  cursor: number;
}

export interface MailboxSummary {
  pending: number;
  /** Epoch milliseconds of the oldest pending message; null when none. */
  oldestAt: number | null;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Topics: durable streams that many readers read, each from its own position. A topic is stored
 * like a mailbox — its messages take the next `seq` of its own sequence inside the publish
 * transaction, so sequence order is commit order and a reader always sees a prefix — under the
 * key `#<name>`. A user id cannot contain `#` (USER_ID_PATTERN), so a topic key never names a
 * mailbox, and the mailbox's acks, receipts and badge never touch a topic's rows (nobody acks
 * a topic: each reader holds its own position, the server keeps no state per reader).
 */
export { TOPIC_NAME_PATTERN } from '../topic-name.js';
const TOPIC_KEY_PREFIX = '#';

/** The stream key of a topic (`#room:42`): what the store, the bus and the engine's index use. */
export function topicKey(name: string): string {
  return TOPIC_KEY_PREFIX + name;
}

/** The topic a stream key names, or undefined for a user's mailbox. */
export function topicOfKey(key: string): string | undefined {
  return key.startsWith(TOPIC_KEY_PREFIX) ? key.slice(TOPIC_KEY_PREFIX.length) : undefined;
}

/**
 * A read of one topic: the messages with `seq > after` (`after` null = "from now": only the
 * topic's head, to start from), at most `limit`.
 */
export interface TopicRead {
  /** The topic's stream key (`topicKey`). */
  key: string;
  after: number | null;
  limit: number;
}

/** What a topic read found. */
export interface TopicPage {
  /** In topic order (`seq`); never expired ones. */
  messages: StoredMessage[];
  /** The reader's new position: the last message's `seq`, else where it read from (the head, for "from now"). */
  position: number;
  /**
   * Set when `after` fell below the retained history (trimmed) or above anything the topic ever
   * issued (a reset database): the read continued from `earliest - 1`, and the reader must be told.
   */
  earliest?: number;
}

/** A topic's `mailboxes` row: its last issued `seq` and how far its history was trimmed. */
export interface TopicHead {
  lastSeq: number;
  trimmedSeq: number;
}

/**
 * Where a read after `after` starts: at `after`, unless it fell below the trimmed history or lies
 * above anything the topic issued; then at the trimmed point, and the reader is told (a reset).
 * The knex store computes the same in SQL, inside its read statement.
 */
export function topicReadStart(after: number, head: TopicHead): { from: number; reset: boolean } {
  const reset = after < head.trimmedSeq || after > head.lastSeq;
  return { from: reset ? head.trimmedSeq : after, reset };
}

/** The page a topic read answers with, from the head and the messages read after `topicReadStart`. */
export function topicPage(after: number | null, head: TopicHead, messages: StoredMessage[]): TopicPage {
  if (after === null) return { messages: [], position: head.lastSeq };
  const { from, reset } = topicReadStart(after, head);
  const position = messages.length > 0 ? messages[messages.length - 1]!.seq : from;
  return reset ? { messages, position, earliest: head.trimmedSeq + 1 } : { messages, position };
}
