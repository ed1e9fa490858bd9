/* The legacy build's public shapes: callbacks instead of promises, synchronous token functions and
   cursor stores. Messages, receipts and checkpoints are the shared ones. */

import type { BackoffOptions } from '../core/backoff.js';
import type { PollCheckpoint } from '../core/checkpoint.js';
import type { ClientFailure } from '../core/failures.js';
import type { MessageContext, PollProgress } from '../core/poll-session.js';
import type { BatchItem } from '../core/publish-request.js';
import type { TopicStart } from '../core/topics.js';
import type { DeliveryReceipt, PollMessage, PresenceEvent } from '../core/types.js';

/** Errors are plain Error objects with these fields, so old engines need no subclassing. */
export interface LpError extends Error, ClientFailure {
  status?: number;
  cause?: unknown;
}

export type LpStatus = PollProgress<LpError> | { type: 'stopped'; reason: 'stop' | 'error'; error?: LpError };

export interface LpCursorStore {
  load(): PollCheckpoint | number | undefined;
  save(checkpoint: PollCheckpoint): void;
}

export interface LpPollerOptions {
  url: string;
  /** The token, or a function returning the current one; a throw is retried like a network error. */
  token: string | (() => string);
  onMessages: (messages: PollMessage[], context: MessageContext) => void;
  /** Called after onMessages, before the checkpoint is saved; without it receipts are skipped. */
  onReceipts?: (receipts: DeliveryReceipt[], context: MessageContext) => void;
  /** Topics to read beside the mailbox: name → position or 'now'; a position in the checkpoint wins. */
  topics?: { [topic: string]: TopicStart };
  /** A topic's position fell below its retained history: reading goes on from `earliest`. Called before onMessages. */
  onReset?: (topic: string, earliest: number) => void;
  /** Joins and leaves in the topics read (polls then send `presence: true`). Called after onMessages and onReceipts. */
  onPresence?: (events: PresenceEvent[]) => void;
  onStatus?: (status: LpStatus) => void;
  wait?: number;
  intervalMs?: number;
  limit?: number;
  cursorStore?: LpCursorStore;
  /** localStorage key for the checkpoint; `false` keeps it in memory. Default: derived from url + token subject. */
  storageKey?: string | false;
  backoff?: BackoffOptions;
  dedupWindow?: number;
}

export interface LpPoller {
  start(): void;
  stop(): void;
  getCursor(): number | undefined;
  /** Same as getCursor(), kept up to date for engines without property getters. */
  cursor: number | undefined;
  /** The `client` every poll carries (kept in the checkpoint); set once the checkpoint is loaded. */
  clientId?: string;
  /** Reads `topic` from the next poll on (a poll in flight is sent again at once); a held position wins over `from`. */
  subscribe(topic: string, from: TopicStart): void;
  /** Stops reading `topic` and forgets its position. */
  unsubscribe(topic: string): void;
}

export interface LpRequestHandle {
  abort(): void;
}

/** Where and how `publish`, `publishBatch`, `presence` and `topicPresence` send: the gateway, the token, the retries. */
export interface LpPublishTransport {
  url: string;
  token: string | (() => string);
  retries?: number;
  backoff?: BackoffOptions;
  timeoutMs?: number;
}

export interface LpPublishOptions extends BatchItem, LpPublishTransport {}

export interface LpPublishBatchOptions extends LpPublishTransport {
  messages: BatchItem[];
}

export interface LpPresenceOptions extends LpPublishTransport {
  users: string[];
}

export interface LpTopicPresenceOptions extends LpPublishTransport {
  topic: string;
}
