import {
  createLongPoller,
  createShortPoller,
  localStorageCursorStore,
  memoryCursorStore,
  presence,
  publish,
  publishBatch,
  topicPresence,
  type CursorStore,
  type PollCheckpoint,
  type DeliveryReceipt,
  type PollMessage,
  type PresenceEvent,
  type PresenceResult,
  type TopicPresenceResult,
  type TopicReset,
  type TopicStart,
} from '../../../src/client/index.js';
import type { createFakeGateway } from './fake-gateway.js';
import { loadLegacyClient, plain } from './legacy-vm.js';

/** A status as both builds report it, reduced to what the contract speaks about. */
export interface ObservedStatus {
  type: string;
  attempt?: number;
  delayMs?: number;
  reason?: string;
  count?: number;
  cursor?: number;
  error?: { code: string; retryable: boolean; status?: number; message: string };
}

export interface PollerCase {
  token: string | (() => string);
  cursorStore?: { load(): unknown; save(checkpoint: PollCheckpoint): unknown };
  backoff?: { minDelayMs: number; maxDelayMs: number; factor: number; jitter: number };
  /** Throw from onMessages on these calls (1-based). */
  failOnMessagesCalls?: number[];
  short?: boolean;
  wait?: number;
  /** Runs after each batch is recorded; may return a promise (the poller must wait for it). */
  onMessages?: (messages: PollMessage[], controls: PollerControls) => void | Promise<void>;
  /** Sees every status as it is reported. */
  onStatus?: (status: ObservedStatus, controls: PollerControls) => void;
  /** Pass onReceipts (recording into `receipts`). */
  receipts?: boolean;
  intervalMs?: number;
  limit?: number;
  dedupWindow?: number;
  topics?: Record<string, TopicStart>;
  /** Runs after each reset is recorded into `resets` (onReset is always passed); may throw. */
  onReset?: (reset: TopicReset, controls: PollerControls) => void;
  /** Pass onPresence (recording into `presence`), which then runs this; may throw. */
  onPresence?: (events: PresenceEvent[], controls: PollerControls) => void;
}

export interface PollerControls {
  start(): void;
  stop(): void;
  /** stop(), and wait for what it returns (the modern build: a promise). */
  stopAndWait(): Promise<void>;
}

export interface PollerUnderTest {
  start(): void;
  stop(): Promise<void>;
  subscribe(topic: string, from: TopicStart): void;
  unsubscribe(topic: string): void;
  readonly cursor: number | undefined;
  readonly received: PollMessage[];
  readonly receipts: DeliveryReceipt[];
  /** What onReset was told, in order. */
  readonly resets: TopicReset[];
  /** What onPresence was handed, batch by batch. */
  readonly presence: PresenceEvent[][];
  readonly statuses: ObservedStatus[];
  /** The poller's `client` id as it exposes it (undefined before the checkpoint is loaded). */
  readonly clientId: string | undefined;
}

/** What both builds' publish helpers take here: a user (`to`) or a topic, and the rest of an item. */
export interface PublishCase {
  to?: string;
  topic?: string;
  id?: string;
  body: unknown;
  receipt?: boolean;
  ttl?: number;
  token: string;
}

export interface PublishOutcome {
  id: number;
  duplicate: boolean;
  clientId: string;
  seq?: number;
}

export interface ClientUnderTest {
  createPoller(options: PollerCase): PollerUnderTest;
  /** A checkpoint store over this client's Web Storage (the same `storage` map every time). */
  storageCursorStore(key: string): { load(): unknown; save(checkpoint: PollCheckpoint): unknown };
  memoryCursorStore(initial?: PollCheckpoint | number): { load(): unknown; save(checkpoint: PollCheckpoint): unknown };
  publish(options: PublishCase): Promise<PublishOutcome>;
  publishBatch(options: { messages: Array<Omit<PublishCase, 'token'>>; token: string }): Promise<PublishOutcome[]>;
  /** The token a recorded request carried (header or query, as this build sends it). */
  tokenOf(request: { url: URL; headers: Headers }): string | null;
  presence(options: { users: string[]; token: string }): Promise<PresenceResult>;
  topicPresence(options: { topic: string; token: string }): Promise<TopicPresenceResult>;
}

export interface Shell {
  name: 'modern' | 'legacy';
  /**
   * A client bound to `gateway` (the fake one, or `{ fetch }` for a real server at `url`); sharing
   * `storage` between two calls is a page reload.
   */
  load(gateway: Pick<ReturnType<typeof createFakeGateway>, 'fetch'>, storage?: Map<string, string>, url?: string): ClientUnderTest;
}

const URL_BASE = 'http://gateway.test/';

function observe(status: unknown): ObservedStatus {
  const { type, attempt, delayMs, reason, count, cursor, error } = status as ObservedStatus & { error?: Record<string, unknown> };
  const observed: ObservedStatus = { type };
  for (const [key, value] of Object.entries({ attempt, delayMs, reason, count, cursor })) if (value !== undefined) Object.assign(observed, { [key]: value });
  if (error) {
    observed.error = { code: error.code as string, retryable: error.retryable as boolean, message: error.message as string };
    if (error.status !== undefined) observed.error.status = error.status as number;
  }
  return observed;
}

interface TrackedOptions {
  url: string;
  token: PollerCase['token'];
  backoff: PollerCase['backoff'];
  limit: PollerCase['limit'];
  dedupWindow: PollerCase['dedupWindow'];
  topics: PollerCase['topics'];
  onMessages: (messages: PollMessage[]) => void | Promise<void>;
  onReceipts?: (receipts: DeliveryReceipt[]) => void;
  onReset: (topic: string, earliest: number) => void;
  onPresence?: (events: PresenceEvent[]) => void;
  onStatus: (status: unknown) => void;
}

interface BuiltPoller {
  start(): void;
  stop(): Promise<void>;
  cursor(): number | undefined;
  clientId(): string | undefined;
  subscribe(topic: string, from: TopicStart): void;
  unsubscribe(topic: string): void;
}

/** Builds a poller with the options every build shares, recording what it hands over and reports. */
function track(options: PollerCase, build: (common: TrackedOptions) => BuiltPoller, url: string): PollerUnderTest {
  const received: PollMessage[] = [];
  const presenceBatches: PresenceEvent[][] = [];
  const receipts: DeliveryReceipt[] = [];
  const resets: TopicReset[] = [];
  const statuses: ObservedStatus[] = [];
  const controls: PollerControls = { start: () => poller.start(), stop: () => void poller.stop(), stopAndWait: () => poller.stop() };
  let calls = 0;
  const poller = build({
    url,
    token: options.token,
    backoff: options.backoff,
    limit: options.limit,
    dedupWindow: options.dedupWindow,
    topics: options.topics,
    onMessages: (messages) => {
      calls += 1;
      if (options.failOnMessagesCalls?.includes(calls)) throw new Error(`render failed on call ${calls}`);
      const batch = plain(messages);
      received.push(...batch);
      return options.onMessages?.(batch, controls) as void | Promise<void>;
    },
    onReceipts: options.receipts ? (batch) => void receipts.push(...plain(batch)) : undefined,
    onReset: (topic, earliest) => {
      resets.push({ topic, earliest });
      options.onReset?.({ topic, earliest }, controls);
    },
    onPresence: options.onPresence
      ? (events) => {
          const batch = plain(events);
          presenceBatches.push(batch);
          options.onPresence!(batch, controls);
        }
      : undefined,
    onStatus: (status) => {
      const observed = observe(status);
      statuses.push(observed);
      options.onStatus?.(observed, controls);
    },
  });
  return {
    start: poller.start,
    stop: poller.stop,
    subscribe: poller.subscribe,
    unsubscribe: poller.unsubscribe,
    get cursor() {
      return poller.cursor();
    },
    get clientId() {
      return poller.clientId();
    },
    received,
    receipts,
    resets,
    presence: presenceBatches,
    statuses,
  };
}

const modern: Shell = {
  name: 'modern',
  load(gateway, storage = new Map(), url = URL_BASE) {
    const webStorage = { getItem: (key: string) => storage.get(key) ?? null, setItem: (key: string, value: string) => void storage.set(key, value) };
    return {
      createPoller(options) {
        return track(options, (common) => {
          const poller = options.short
            ? createShortPoller({ ...common, fetch: gateway.fetch, cursorStore: options.cursorStore as CursorStore | undefined, intervalMs: options.intervalMs })
            : // The gateways these suites run against serve polls: the contract of polling, on both builds.
              createLongPoller({ ...common, fetch: gateway.fetch, cursorStore: options.cursorStore as CursorStore | undefined, wait: options.wait, transports: ['long-poll'] });
          return {
            start: () => void poller.start(),
            stop: () => poller.stop(),
            cursor: () => poller.cursor,
            clientId: () => poller.clientId,
            subscribe: (topic, from) => poller.subscribe(topic, from),
            unsubscribe: (topic) => poller.unsubscribe(topic),
          };
        }, url);
      },
      storageCursorStore: (key) => localStorageCursorStore(key, webStorage),
      memoryCursorStore: (initial) => memoryCursorStore(initial),
      publish: (options) => publish({ url, fetch: gateway.fetch, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }),
      publishBatch: (options) => publishBatch({ url, fetch: gateway.fetch, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }),
      tokenOf: (request) => request.headers.get('authorization')?.replace(/^Bearer /, '') ?? null,
      presence: (options) => presence({ url, fetch: gateway.fetch, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }),
      topicPresence: (options) => topicPresence({ url, fetch: gateway.fetch, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }),
    };
  },
};

const legacy: Shell = {
  name: 'legacy',
  load(gateway, storage, url = URL_BASE) {
    const { LongPoll } = loadLegacyClient(gateway, storage);
    return {
      createPoller(options) {
        return track(options, (common) => {
          const legacyOptions = { ...common, storageKey: false, cursorStore: options.cursorStore };
          const poller = options.short ? LongPoll.createShortPoller({ ...legacyOptions, intervalMs: options.intervalMs }) : LongPoll.createLongPoller({ ...legacyOptions, wait: options.wait });
          return {
            start: () => poller.start(),
            stop: async () => poller.stop(),
            cursor: () => poller.getCursor(),
            clientId: () => poller.clientId,
            subscribe: (topic, from) => poller.subscribe(topic, from),
            unsubscribe: (topic) => poller.unsubscribe(topic),
          };
        }, url);
      },
      storageCursorStore: (key) => LongPoll.localStorageCursorStore(key),
      memoryCursorStore: (initial) => LongPoll.memoryCursorStore(initial as never),
      publish: (options) => settle((done) => LongPoll.publish({ url, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }, done)),
      publishBatch: (options) => settle((done) => LongPoll.publishBatch({ url, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }, done)),
      tokenOf: (request) => request.url.searchParams.get('access_token'),
      presence: (options) => settle((done) => LongPoll.presence({ url, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }, done)),
      topicPresence: (options) => settle((done) => LongPoll.topicPresence({ url, backoff: { minDelayMs: 1, maxDelayMs: 4 }, ...options }, done)),
    };
  },
};

/** A legacy callback API as a promise; errors keep their fields (code, status, retryable). */
function settle<T>(call: (done: (error: { code: string } | null, result?: unknown) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    call((error, result) => (error ? reject(Object.assign(new Error(error.code), plain({ ...error }))) : resolve(plain(result) as T))),
  );
}

export const SHELLS: Shell[] = [modern, legacy];
