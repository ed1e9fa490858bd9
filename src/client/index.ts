/**
 * Client library for the long-polling gateway (`longpoll-gateway/client`): long and short pollers
 * with cursors, topics, presence, de-duplication, delivery receipts and backoff, plus `publish`, `publishBatch`, `presence`
 * and `topicPresence`. The long poller receives over a WebSocket, Server-Sent Events or long polls,
 * whichever works. Runs wherever `fetch` and
 * `AbortController` exist (Node 20+, current browsers); old browsers use the legacy bundle
 * (`dist/client/longpoll.legacy.js`, global `LongPoll`, polling only) instead.
 */
export { createLongPoller, type LongPollerOptions } from './long-poller.js';
export { createShortPoller, type ShortPollerOptions } from './short-poller.js';
export type { CommonPollerOptions, MessageContext, Poller, PollerConnected, PollerStatus, PollerStopped } from './poll-loop.js';
export type { PollerTransport, WebSocketConstructor, WebSocketLike } from './transports/options.js';
export { publish, publishBatch, type PublishOptions, type PublishBatchOptions, type BatchItem, type PublishResult } from './publish.js';
export {
  presence,
  topicPresence,
  type PresenceOptions,
  type TopicPresenceOptions,
  type PresenceResult,
  type UserPresence,
  type TopicPresenceResult,
  type TopicPresenceMember,
} from './presence.js';
export type { GatewayRequestOptions } from './request-with-retries.js';
export { backoffDelays, type BackoffOptions } from './core/backoff.js';
export { memoryCursorStore, localStorageCursorStore, type CursorStore, type PollCheckpoint, type StorageLike } from './cursor-store.js';
export type { SeenIdsSnapshot } from './core/seen-ids.js';
export {
  ClientError,
  ClientHttpError,
  ClientNetworkError,
  ClientProtocolError,
  ClientCallbackError,
  ClientCursorStoreError,
  isClientError,
  isRetryableStatus,
} from './errors.js';
export type { PollMessage, PollResponse, DeliveryReceipt, TopicReset, PresenceEvent, FetchLike } from './types.js';
export type { TopicStart, TopicPositions } from './core/topics.js';
export type { ClientErrorCode } from './core/failures.js';
export type { ErrorCode } from '../error-codes.js';
