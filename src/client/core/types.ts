/**
 * One message as the gateway delivers it.
 *
 * @example
 * const onMessages = (messages: PollMessage<{ text: string }>[]) => messages.forEach((m) => show(m.from, m.body.text));
 */
export interface PollMessage<Body = unknown> {
  /** Server-assigned, unique per message; the key for de-duplication. */
  id: number;
  /** User id of the sender. */
  from: string;
  body: Body;
  /** ISO timestamp of when the gateway stored the message. */
  createdAt: string;
  /** ISO timestamp after which the gateway never delivers it; absent when it does not expire. */
  expiresAt?: string;
  /** The topic it was published to; absent for a message to this user's own mailbox. */
  topic?: string;
  /** Its position in `topic` (present exactly when `topic` is): what the poller resumes after. */
  seq?: number;
}

/**
 * The parsed body of `GET /v1/poll` (pollers handle it for you; exported for custom loops).
 *
 * @example
 * const page: PollResponse = { messages: [], receipts: [], cursor: 42, positions: { 'room:1': 7 }, resets: [], presence: [], superseded: false };
 */
export interface PollResponse<Body = unknown> {
  /** The mailbox's messages first, then each topic's (those carry `topic` and `seq`). */
  messages: PollMessage<Body>[];
  /** Receipts for messages this user published with `receipt: true`; `[]` when the body had none. */
  receipts: DeliveryReceipt[];
  cursor: number;
  /** The new position of every topic the poll read; `{}` when it read none. */
  positions: { [topic: string]: number };
  /** Topics whose position fell below their retained history; `[]` when none did. */
  resets: TopicReset[];
  /** Joins and leaves in the topics read, for a poll that asked for them; `[]` when the body had none. */
  presence: PresenceEvent[];
  superseded: boolean;
}

/**
 * A user joined a topic (its first poller reading it arrived) or left it (its last one went away),
 * as polls that ask for presence receive it (not kept in the checkpoint).
 *
 * @example
 * const onPresence = (events: PresenceEvent[]) => events.forEach((e) => roster(e.topic).mark(e.user, e.event === 'join', e.at));
 */
export interface PresenceEvent {
  topic: string;
  user: string;
  event: 'join' | 'leave';
  /** ISO timestamp of the join or leave. */
  at: string;
}

/**
 * A topic's position fell below its retained history (or beyond its end, when the gateway's
 * database was reset): the messages before `earliest` are gone for this reader, and reading went
 * on from `earliest`, the oldest message the topic still holds.
 *
 * @example
 * const onReset = (topic: string, earliest: number) => console.warn(`missed messages of ${topic} before ${earliest}`);
 */
export interface TopicReset {
  topic: string;
  earliest: number;
}

/**
 * Tells a sender that the recipient acknowledged one of its messages (published with
 * `receipt: true`). Delivered through the sender's own polls, to `onReceipts`.
 *
 * @example
 * const onReceipts = (receipts: DeliveryReceipt[]) => receipts.forEach((r) => markRead(r.id, r.at));
 */
export interface DeliveryReceipt {
  /** Server id of the message it is about: the `id` its publish answered. Exactly one receipt per message. */
  id: number;
  /** The recipient whose ack covered the message. */
  to: string;
  status: 'acked';
  /** ISO timestamp of the ack. */
  at: string;
}
