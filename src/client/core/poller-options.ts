/**
 * The poller options both builds share, checked once. The shells add their own transport options
 * (`fetch` and `signal`, or `storageKey`) and the cursor store.
 */
import { resolveBackoffOptions, type BackoffOptions, type ResolvedBackoffOptions } from './backoff.js';
import type { Invoke, MessageContext, PollSchedule } from './poll-session.js';
import { DEFAULT_SEEN_ID_CAPACITY } from './seen-ids.js';
import { createTopicSubscriptions, type TopicSubscriptions } from './topics.js';
import type { DeliveryReceipt, PollMessage, PresenceEvent } from './types.js';
import { tokenFailure, type FailureSpec } from './failures.js';
import { invalid, isObject, isString, numberOption, optionalFunction, requireFunction, requireNonEmptyString } from './validate.js';

export interface SharedPollerOptions {
  token: unknown;
  onMessages: (messages: PollMessage<never>[], context: MessageContext) => unknown;
  onReceipts?: (receipts: DeliveryReceipt[], context: MessageContext) => unknown;
  onStatus?: (status: never) => void;
  onReset?: (topic: string, earliest: number) => unknown;
  onPresence?: (events: PresenceEvent[]) => unknown;
  topics?: unknown;
  limit?: number;
  backoff?: BackoffOptions;
  dedupWindow?: number;
}

export interface ResolvedPollerOptions {
  token: () => unknown;
  onMessages: (messages: PollMessage[], context: MessageContext) => unknown;
  onReceipts: ((receipts: DeliveryReceipt[], context: MessageContext) => unknown) | undefined;
  onStatus: ((status: unknown) => void) | undefined;
  onReset: ((topic: string, earliest: number) => unknown) | undefined;
  /** Given: polls that read topics ask for their joins and leaves. */
  onPresence: ((events: PresenceEvent[]) => unknown) | undefined;
  topics: TopicSubscriptions;
  limit: number;
  backoff: ResolvedBackoffOptions;
  dedupWindow: number;
}

export function resolvePollerOptions(options: SharedPollerOptions): ResolvedPollerOptions {
  if (!isObject(options)) throw invalid('options', 'an object', options);
  return {
    token: tokenProvider(options.token),
    onMessages: requireFunction('onMessages', options.onMessages) as ResolvedPollerOptions['onMessages'],
    onReceipts: optionalFunction('onReceipts', options.onReceipts),
    onStatus: optionalFunction('onStatus', options.onStatus) as ((status: unknown) => void) | undefined,
    onReset: optionalFunction('onReset', options.onReset),
    onPresence: optionalFunction('onPresence', options.onPresence),
    topics: createTopicSubscriptions(options.topics),
    limit: numberOption('limit', options.limit, 100, { min: 1, max: 500, integer: true }),
    backoff: resolveBackoffOptions(options.backoff, 'backoff'),
    dedupWindow: numberOption('dedupWindow', options.dedupWindow, DEFAULT_SEEN_ID_CAPACITY, { min: 1, integer: true }),
  };
}

/**
 * Asks `provider` (through `invoke`: it may answer with a promise) for the token of the next
 * request. A throw, a rejection or an empty answer is a retryable `token_unavailable`: typically a
 * refresh that could not reach its auth server.
 */
export function currentToken(provider: () => unknown, invoke: Invoke, done: (failure: FailureSpec | undefined, token?: string) => void): void {
  invoke(provider, function (failed, value) {
    let token: string;
    try {
      if (failed) throw value;
      token = requireNonEmptyString('token', value);
    } catch (error) {
      return done(tokenFailure(error));
    }
    done(undefined, token);
  });
}

/** A fixed token becomes a function; a function is called before every request. */
export function tokenProvider(token: unknown): () => unknown {
  if (typeof token === 'function') return token as () => unknown;
  if (!isString(token) || !token) throw invalid('token', 'a non-empty string or a function', token);
  return function () {
    return token;
  };
}

/**
 * Long polls: the server holds each request up to `wait` seconds. A full page means more may be
 * waiting, an empty one means `wait` elapsed: either way, ask again at once.
 */
export function longPollSchedule(options: { wait?: number } | undefined): PollSchedule {
  const waitSeconds = numberOption('wait', options && options.wait, 25, { min: 1, integer: true, description: 'a positive integer (seconds)' });
  return {
    waitSeconds: waitSeconds,
    pauseAfter: function () {
      return 0;
    },
  };
}

/**
 * Short polls (`wait=0`, answered at once) every `intervalMs`; a full page is followed by another
 * poll straight away, so a backlog drains without waiting out the interval.
 */
export function shortPollSchedule(options: { intervalMs?: number } | undefined): PollSchedule {
  const intervalMs = numberOption('intervalMs', options && options.intervalMs, 5000, { min: 0 });
  return {
    waitSeconds: 0,
    pauseAfter: function (received, limit) {
      return received >= limit ? 0 : intervalMs;
    },
  };
}

