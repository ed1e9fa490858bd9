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
}

/**
 * The parsed body of `GET /v1/poll` (pollers handle it for you; exported for custom loops).
 *
 * @example
 * const page: PollResponse = { messages: [], receipts: [], cursor: 42, superseded: false };
 */
export interface PollResponse<Body = unknown> {
  messages: PollMessage<Body>[];
  /** Receipts for messages this user published with `receipt: true`; `[]` when the body had none. */
  receipts: DeliveryReceipt[];
  cursor: number;
  superseded: boolean;
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
