import pRetry, { AbortError } from 'p-retry';
import { sleep } from './abortable.js';
import { backoffDelays, resolveBackoffOptions, type BackoffOptions } from './backoff.js';
import { memoryCursorStore, toCheckpoint, type CursorStore, type PollCheckpoint } from './cursor-store.js';
import { ClientCallbackError, ClientCursorStoreError, ClientError, type ClientHttpError } from './errors.js';
import { endpoint, httpErrorFrom, sendJsonRequest, type JsonResponse } from './http.js';
import { parsePollResponse } from './poll-response.js';
import { DEFAULT_SEEN_ID_CAPACITY, SeenIdWindow } from './seen-ids.js';
import type { DeliveryReceipt, FetchLike, PollMessage } from './types.js';
import { parseBaseUrl, requireAbortSignal, requireFunction, requireNonEmptyString, requireNumberInRange } from './validate.js';

/**
 * What a poller reports through `onStatus`.
 *
 * @example
 * onStatus: (status: PollerStatus) => {
 *   if (status.type === 'retrying') banner(`Reconnecting in ${Math.round(status.delayMs / 1000)} s`);
 *   if (status.type === 'connected') banner(null);
 * }
 */
export type PollerStatus =
  /** The first successful poll after `start()` or after a run of failures. */
  | { type: 'connected'; cursor: number }
  /** A batch was handed to `onMessages` and the checkpoint saved. `count` excludes duplicates. */
  | { type: 'messages'; count: number; cursor: number }
  /** A newer poll for the same user replaced ours; polling again after `delayMs`. */
  | { type: 'superseded'; delayMs: number }
  /** A poll failed with a transient error; retry number `attempt` follows after `delayMs`. */
  | { type: 'retrying'; attempt: number; delayMs: number; error: ClientError }
  /** The loop ended: `stop()` was called, the `signal` aborted, or a non-retryable `error` (401, 403, 400...). */
  | PollerStopped;

/**
 * How a run ended; what `start()` resolves with and the last status reported.
 *
 * @example
 * const { reason, error } = await poller.start();
 * if (reason === 'error') console.error(error?.code);
 */
export type PollerStopped = { type: 'stopped'; reason: 'stop' | 'signal' | 'error'; error?: ClientError };

/**
 * @example
 * onMessages: (messages, { cursor }: MessageContext) => db.saveBatch(messages, cursor)
 */
export interface MessageContext {
  /** The cursor that will be saved (and sent with the next poll) once `onMessages` and `onReceipts` return. */
  cursor: number;
}

/**
 * Options shared by `createLongPoller` and `createShortPoller`.
 *
 * @example
 * const options: CommonPollerOptions = { url: 'https://gateway.example.com/', token: jwt, onMessages: console.log };
 */
export interface CommonPollerOptions<Body = unknown> {
  /** Base URL of the gateway, e.g. `https://chat.example.com/` (endpoints resolve below it). */
  url: string | URL;
  /** The JWT, or a function returning the current one (called before every request). */
  token: string | (() => string | Promise<string>);
  /**
   * Receives each batch of new messages in id order, never a message twice. The checkpoint is
   * saved only after it returns (or its promise resolves); if it throws, the batch is redelivered
   * after a backoff delay.
   */
  onMessages: (messages: PollMessage<Body>[], context: MessageContext) => void | Promise<void>;
  /**
   * Receives the receipts for messages this user published with `receipt: true`, after
   * `onMessages` for the same response and under the same rules: the checkpoint is saved only
   * after it returns, a throw means redelivery, and a receipt is handed over once (de-duplicated
   * by the original message `id`, remembered apart from message ids). Without it receipts are
   * skipped, and the cursor still moves past them.
   */
  onReceipts?: (receipts: DeliveryReceipt[], context: MessageContext) => void | Promise<void>;
  /** Messages per response, 1..500. Default 100. */
  limit?: number;
  /** Where the cursor and recently seen ids live between runs. Default: memory. */
  cursorStore?: CursorStore;
  /** Default `globalThis.fetch`, looked up when the poller is created. */
  fetch?: FetchLike;
  onStatus?: (status: PollerStatus) => void;
  backoff?: BackoffOptions;
  /** Aborting it stops the poller, like `stop()`. */
  signal?: AbortSignal;
  /** How many recent message ids (and, apart from them, receipt ids) to remember for de-duplication. Default 1000. */
  dedupWindow?: number;
}

/**
 * @example
 * const poller: Poller = createLongPoller(options);
 * poller.start();
 * window.addEventListener('pagehide', () => void poller.stop());
 */
export interface Poller {
  /** Starts polling (no-op while running). Resolves when the loop ends; never rejects. */
  start(): Promise<PollerStopped>;
  /** Aborts the request or delay in flight and resolves once the loop has ended. */
  stop(): Promise<void>;
  /** The cursor last received (and, once saved, sent back); undefined before the checkpoint is loaded. */
  readonly cursor: number | undefined;
}

/** How the two poller flavours differ: the `wait` they ask for and the pause after a success. */
export interface PollSchedule {
  waitSeconds: number;
  /** Milliseconds to pause after a successful poll that returned `received` messages (0 = poll at once). */
  pauseAfter(received: number, limit: number): number;
}

/** Added to the long-poll wait before a silent connection counts as dead. */
const REQUEST_TIMEOUT_GRACE_MS = 15_000;

class StopRequest extends Error {
  constructor(readonly reason: 'stop' | 'signal') {
    super(`Poller stopped (${reason})`);
  }
}

export function createPollLoop<Body>(options: CommonPollerOptions<Body>, schedule: PollSchedule): Poller {
  const config = resolveCommonOptions(options);
  const delayFor = backoffDelays(config.backoff);
  let waitSeconds = schedule.waitSeconds;

  let checkpoint: PollCheckpoint | undefined;
  let seen: SeenIdWindow | undefined;
  let seenReceipts: SeenIdWindow | undefined;
  let running: { controller: AbortController; done: Promise<PollerStopped> } | undefined;

  function emit(status: PollerStatus): void {
    if (!config.onStatus) return;
    try {
      config.onStatus(status);
    } catch (error) {
      // A broken status handler must neither stop delivery nor crash a Node process: report it
      // the way the platform reports stray errors (browsers) or log it.
      const report = (globalThis as { reportError?: (error: unknown) => void }).reportError;
      if (typeof report === 'function') report(error);
      else console.error('longpoll-gateway client: onStatus threw', error);
    }
  }

  async function loadCheckpoint(): Promise<void> {
    if (checkpoint) return;
    let loaded: PollCheckpoint | number | undefined;
    try {
      loaded = await config.cursorStore.load();
    } catch (error) {
      throw new ClientCursorStoreError('load', error, false);
    }
    try {
      checkpoint = loaded === undefined ? { cursor: 0, seen: { ids: [] } } : toCheckpoint(loaded, 'cursorStore.load()');
    } catch (error) {
      throw new ClientCursorStoreError('load', error, false);
    }
    seen = new SeenIdWindow(config.dedupWindow, checkpoint.seen);
    seenReceipts = new SeenIdWindow(config.dedupWindow, checkpoint.seenReceipts, { ascending: false });
  }

  async function requestPoll(signal: AbortSignal): Promise<JsonResponse> {
    for (;;) {
      const state = checkpoint!;
      const url = endpoint(config.baseUrl, 'v1/poll', { cursor: state.cursor, wait: waitSeconds, limit: config.limit });
      const response = await sendJsonRequest(config.fetch, {
        method: 'GET',
        url,
        token: await currentToken(),
        signal,
        timeoutMs: waitSeconds * 1000 + REQUEST_TIMEOUT_GRACE_MS,
      });
      const serverWaitMax = Number.parseInt(response.headers.get('X-Poll-Wait-Max') ?? '', 10);
      const clamped = Number.isInteger(serverWaitMax) && serverWaitMax >= 0 && serverWaitMax < waitSeconds;
      if (clamped) waitSeconds = serverWaitMax;
      // Asked for a longer wait than this server allows: ask again at once with its maximum or,
      // when the error does not say what that is, with half the wait until one is accepted.
      if (response.status === 400 && httpErrorFrom(response).code === 'invalid_wait') {
        if (clamped) continue;
        if (waitSeconds > 1) {
          waitSeconds = Math.floor(waitSeconds / 2);
          continue;
        }
      }
      return response;
    }
  }

  async function currentToken(): Promise<string> {
    try {
      return requireNonEmptyString('token', await config.token());
    } catch (error) {
      // Typically a refresh that could not reach its auth server: worth another try later.
      throw new ClientError('token_unavailable', `The token function failed: ${error instanceof Error ? error.message : String(error)}`, {
        retryable: true,
        cause: error,
      });
    }
  }

  /**
   * One attempt for p-retry: transient ClientErrors are thrown as they are (retried), everything
   * else wrapped in AbortError (ends the loop at once, without a pointless backoff delay).
   */
  async function pollOnce(signal: AbortSignal, onConnected: () => void) {
    try {
      return await pollAndDeliver(signal, onConnected);
    } catch (error) {
      if (signal.aborted) throw new AbortError(signal.reason as Error);
      if (error instanceof ClientError && error.retryable) throw error;
      throw new AbortError(toClientError(error));
    }
  }

  /** One poll and the delivery of its batch; resolves with what arrived. */
  async function pollAndDeliver(signal: AbortSignal, onConnected: () => void) {
    const response = await requestPoll(signal);
    if (response.status < 200 || response.status > 299) throw httpErrorFrom(response);
    const { messages, receipts, cursor, superseded } = parsePollResponse(response.body);
    onConnected();

    const fresh = unseen(messages as PollMessage<Body>[], seen!);
    await handOver(fresh, seen!, config.onMessages, 'onMessages', cursor);
    const freshReceipts = config.onReceipts ? unseen(receipts, seenReceipts!) : [];
    await handOver(freshReceipts, seenReceipts!, config.onReceipts, 'onReceipts', cursor);
    const changed = fresh.length > 0 || freshReceipts.length > 0 || cursor !== checkpoint!.cursor;
    checkpoint = { cursor, seen: seen!.snapshot() };
    // Left out while empty, so checkpoints of apps without receipts keep their old shape.
    const receiptIds = seenReceipts!.snapshot();
    if (receiptIds.ids.length > 0) checkpoint.seenReceipts = receiptIds;
    if (changed) {
      try {
        await config.cursorStore.save(checkpoint);
      } catch (error) {
        // Memory already moved on, so the next poll acknowledges correctly; only persistence lags.
        throw new ClientCursorStoreError('save', error, true);
      }
    }
    if (fresh.length > 0) emit({ type: 'messages', count: fresh.length, cursor });
    // Receipts fill the page like messages (they hold places in the mailbox sequence).
    return { received: messages.length + receipts.length, superseded };
  }

  /**
   * Hands `items` to the application and only then records their ids: if the callback throws, the
   * response is polled again and whatever was not recorded is handed over once more.
   */
  async function handOver<Item extends { id: number }>(
    items: Item[],
    window: SeenIdWindow,
    callback: ((items: Item[], context: MessageContext) => void | Promise<void>) | undefined,
    name: 'onMessages' | 'onReceipts',
    cursor: number,
  ): Promise<void> {
    if (items.length === 0 || !callback) return;
    try {
      await callback(items, { cursor });
    } catch (error) {
      throw new ClientCallbackError(error, name);
    }
    for (const item of items) window.add(item.id);
  }

  async function run(controller: AbortController): Promise<PollerStopped> {
    const signal = controller.signal;
    const stopped = (): PollerStopped => {
      const reason = signal.reason instanceof StopRequest ? signal.reason.reason : 'signal';
      return { type: 'stopped', reason };
    };
    try {
      await loadCheckpoint();
      let connected = false;
      const onConnected = () => {
        if (connected) return;
        connected = true;
        emit({ type: 'connected', cursor: checkpoint!.cursor });
      };
      while (!signal.aborted) {
        const outcome = await pRetry(() => pollOnce(signal, onConnected), {
          retries: Number.POSITIVE_INFINITY,
          // Delays are ours (jitter model, Retry-After), slept in onFailedAttempt; p-retry's stay 0.
          minTimeout: 0,
          factor: 1,
          signal,
          onFailedAttempt: async ({ error, attemptNumber }) => {
            connected = false;
            const clientError = toClientError(error);
            const retryAfterMs = (clientError as Partial<ClientHttpError>).retryAfterMs ?? 0;
            const delayMs = Math.max(delayFor(attemptNumber), retryAfterMs);
            emit({ type: 'retrying', attempt: attemptNumber, delayMs, error: clientError });
            await sleep(delayMs, signal);
          },
        });
        if (outcome.superseded) {
          const delayMs = delayFor(1);
          emit({ type: 'superseded', delayMs });
          await sleep(delayMs, signal);
        } else {
          const pauseMs = schedule.pauseAfter(outcome.received, config.limit);
          if (pauseMs > 0) await sleep(pauseMs, signal);
        }
      }
      return stopped();
    } catch (error) {
      if (signal.aborted) return stopped();
      return { type: 'stopped', reason: 'error', error: toClientError(error) };
    }
  }

  function start(): Promise<PollerStopped> {
    if (running) return running.done;
    const controller = new AbortController();
    const external = config.signal;
    const onExternalAbort = () => controller.abort(new StopRequest('signal'));
    if (external?.aborted) onExternalAbort();
    else external?.addEventListener('abort', onExternalAbort, { once: true });

    const current = {
      controller,
      done: run(controller).then((result) => {
        external?.removeEventListener('abort', onExternalAbort);
        if (running === current) running = undefined;
        emit(result);
        return result;
      }),
    };
    running = current;
    return current.done;
  }

  async function stop(): Promise<void> {
    const current = running;
    if (!current) return;
    current.controller.abort(new StopRequest('stop'));
    await current.done;
  }

  return {
    start,
    stop,
    get cursor() {
      return checkpoint?.cursor;
    },
  };
}

/** The items whose id `window` has not seen, without repeats inside the batch, in the server's order. */
function unseen<Item extends { id: number }>(items: Item[], window: SeenIdWindow): Item[] {
  const fresh: Item[] = [];
  const inThisBatch = new Set<number>();
  for (const item of items) {
    if (window.has(item.id) || inThisBatch.has(item.id)) continue;
    inThisBatch.add(item.id);
    fresh.push(item);
  }
  return fresh;
}

function toClientError(error: unknown): ClientError {
  if (error instanceof ClientError) return error;
  return new ClientError('unexpected_error', error instanceof Error ? error.message : String(error), { retryable: false, cause: error });
}

interface ResolvedCommonOptions<Body> {
  baseUrl: URL;
  token: () => string | Promise<string>;
  onMessages: CommonPollerOptions<Body>['onMessages'];
  onReceipts: CommonPollerOptions<Body>['onReceipts'];
  limit: number;
  cursorStore: CursorStore;
  fetch: FetchLike;
  onStatus: ((status: PollerStatus) => void) | undefined;
  backoff: ReturnType<typeof resolveBackoffOptions>;
  signal: AbortSignal | undefined;
  dedupWindow: number;
}

function resolveCommonOptions<Body>(options: CommonPollerOptions<Body>): ResolvedCommonOptions<Body> {
  if (typeof options !== 'object' || options === null) throw new TypeError('Expected poller options to be an object');
  const token = options.token;
  let tokenProvider: () => string | Promise<string>;
  if (typeof token === 'function') tokenProvider = token;
  else {
    const fixed = requireNonEmptyString('token', token);
    tokenProvider = () => fixed;
  }
  const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
  if (typeof fetchImpl !== 'function') {
    throw new TypeError('Expected `fetch` to be a function (no global fetch in this environment; pass one in)');
  }
  const cursorStore = options.cursorStore ?? memoryCursorStore();
  if (typeof cursorStore?.load !== 'function' || typeof cursorStore.save !== 'function') {
    throw new TypeError('Expected `cursorStore` to have `load()` and `save(checkpoint)` methods');
  }
  return {
    baseUrl: parseBaseUrl('url', options.url),
    token: tokenProvider,
    onMessages: requireFunction('onMessages', options.onMessages),
    onReceipts: options.onReceipts === undefined ? undefined : requireFunction('onReceipts', options.onReceipts),
    limit: requireNumberInRange('limit', options.limit ?? 100, { min: 1, max: 500, integer: true }),
    cursorStore,
    fetch: fetchImpl,
    onStatus: options.onStatus === undefined ? undefined : requireFunction('onStatus', options.onStatus),
    backoff: resolveBackoffOptions(options.backoff, 'backoff'),
    signal: requireAbortSignal('signal', options.signal),
    dedupWindow: requireNumberInRange('dedupWindow', options.dedupWindow ?? DEFAULT_SEEN_ID_CAPACITY, { min: 1, integer: true }),
  };
}
