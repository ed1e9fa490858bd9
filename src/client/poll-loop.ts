import pRetry, { AbortError } from 'p-retry';
import { sleep } from './abortable.js';
import type { BackoffOptions } from './core/backoff.js';
import { memoryCursorStore } from './core/checkpoint.js';
import { resolvePollerOptions } from './core/poller-options.js';
import {
  createPollSession,
  invokeApplication,
  type Invoke,
  type MessageContext,
  type PollOutcome,
  type PollProgress,
  type PollSchedule,
} from './core/poll-session.js';
import type { TopicStart } from './core/topics.js';
import type { CursorStore } from './cursor-store.js';
import { ClientError, makeClientError, toClientError } from './errors.js';
import { sendRequest } from './http.js';
import type { DeliveryReceipt, FetchLike, PollMessage, PresenceEvent } from './types.js';
import { parseBaseUrl, requireAbortSignal, resolveFetch } from './validate.js';

export type { MessageContext, PollSchedule };

/**
 * What a poller reports through `onStatus`: `connected`, `messages`, `superseded`, `retrying`
 * (with the ClientError and the delay before the next attempt), and finally `stopped`.
 *
 * @example
 * onStatus: (status: PollerStatus) => {
 *   if (status.type === 'retrying') banner(`Reconnecting in ${Math.round(status.delayMs / 1000)} s`);
 *   if (status.type === 'connected') banner(null);
 * }
 */
export type PollerStatus = PollProgress<ClientError> | PollerStopped;

/**
 * How a run ended; what `start()` resolves with and the last status reported.
 *
 * @example
 * const { reason, error } = await poller.start();
 * if (reason === 'error') console.error(error?.code);
 */
export type PollerStopped = { type: 'stopped'; reason: 'stop' | 'signal' | 'error'; error?: ClientError };

/**
 * Options shared by `createLongPoller` and `createShortPoller`.
 *
 * @example
 * const options: CommonPollerOptions = { url: 'https://gateway.example.com/', token: jwt, onMessages: console.log };
 */
export interface CommonPollerOptions<Body = unknown> {
  /** Base URL of the gateway, e.g. `https://chat.example.com/` (endpoints resolve below it). */
  url: string | URL;
  /**
   * The JWT, or a function returning the current one (called before every request). When the
   * function throws or rejects, the poll is retried after a backoff delay (`token_unavailable`).
   */
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
  /**
   * Topics to read beside the mailbox, each from a position (its messages with a greater `seq`;
   * 0 = all it still holds) or `'now'`. Their messages reach `onMessages` after the mailbox's, with
   * `topic` and `seq` set, each once: positions are saved in the checkpoint beside the cursor, and a
   * saved position wins over the one given here (see `Poller.subscribe`). A poll that reads topics
   * is sent as `POST /v1/poll`.
   */
  topics?: Record<string, TopicStart>;
  /**
   * Told when a topic's position fell below what the gateway still holds of it: the messages
   * before `earliest` are gone for this reader, and reading goes on from `earliest`. Called before
   * `onMessages` for the same answer, and waited for when it returns a promise; a throw is retried
   * like one from `onMessages` (so the reset is told again).
   */
  onReset?: (topic: string, earliest: number) => void | Promise<void>;
  /**
   * Receives the joins and leaves in the topics read (`PresenceEvent`s, as the answer gives them:
   * `at` is an ISO string). Given, polls that read topics ask for them (`presence: true`; a poll
   * that reads none asks for none). Called after `onMessages` and `onReceipts` for the same answer,
   * before the checkpoint is saved, and waited for when it returns a promise. An answer with events
   * only moves no cursor or position. A throw is retried like one from `onMessages`: the poll is
   * sent again and no message is handed over twice, but events are kept nowhere, so those of that
   * answer need not come again (`topicPresence` resyncs).
   */
  onPresence?: (events: PresenceEvent[]) => void | Promise<void>;
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
  /**
   * Aborts the request or delay in flight and resolves once the loop has ended. A callback in
   * progress finishes first (what it took is recorded); nothing is handed over or reported after
   * it. While `onMessages` / `onReceipts` run (stop() may be called from inside them), it resolves
   * at once instead, and the loop ends as soon as the callback returns.
   */
  stop(): Promise<void>;
  /** The cursor last received (and, once saved, sent back); undefined before the checkpoint is loaded. */
  readonly cursor: number | undefined;
  /**
   * The id this poller sends as `client` with every poll, for the gateway's presence: the
   * checkpoint's, or made up when it had none (then saved in it); undefined before it is loaded.
   */
  readonly clientId: string | undefined;
  /**
   * Reads `topic` from the next poll on, after position `from` (0 = all it still holds) or from
   * `'now'`. A position the poller already holds wins over `from`: that of a topic it reads (a
   * repeated subscribe changes nothing), and one loaded from the checkpoint, for topics subscribed
   * before the first answer after the poller first starts, so a restarted client resumes exactly
   * (positions of topics nobody subscribed to by then are dropped). A poll held open at the time
   * is abandoned and sent again at once, so the change applies now rather than when that poll
   * ends; a change made inside `onMessages` applies from the next poll. Works while stopped too.
   *
   * @example
   * poller.subscribe('room:42', 'now');
   */
  subscribe(topic: string, from: TopicStart): void;
  /**
   * Stops reading `topic` (from the next poll on, abandoning a held one) and forgets its position,
   * so a later `subscribe` begins at its `from`.
   *
   * @example
   * poller.unsubscribe('room:42');
   */
  unsubscribe(topic: string): void;
}

/** Why a poll in flight was abandoned for one with the changed topics (not a failure). */
const RESEND = new Error('Topics changed: poll sent again');

class StopRequest extends Error {
  constructor(readonly reason: 'stop' | 'signal') {
    super(`Poller stopped (${reason})`);
  }
}

/**
 * The modern shell around the shared poll session: fetch + AbortController for requests, p-retry
 * for the retry loop, promises for application code that answers asynchronously.
 */
export function createPollLoop<Body>(options: CommonPollerOptions<Body>, schedule: PollSchedule): Poller {
  const shared = resolvePollerOptions(options as Parameters<typeof resolvePollerOptions>[0]);
  const baseUrl = parseBaseUrl('url', options.url);
  const fetchImpl = resolveFetch(options.fetch);
  const external = requireAbortSignal('signal', options.signal);
  const cursorStore = options.cursorStore ?? memoryCursorStore();
  if (typeof cursorStore?.load !== 'function' || typeof cursorStore.save !== 'function') {
    throw new TypeError('Expected `cursorStore` to have `load()` and `save(checkpoint)` methods');
  }
  const onStatus = shared.onStatus as ((status: PollerStatus) => void) | undefined;

  /** Rejects the step in progress when the session's own continuation throws (a bug, not an outcome). */
  let failStep: (error: unknown) => void = (error) => reportStray('the poll loop failed', error);
  /** An answer is being handed to the application (its callbacks may be running right now). */
  let handingOver = false;
  /** Abandons the poll in flight, so that it is sent again at once with the topics changed meanwhile. */
  let resendPoll: (() => void) | undefined;
  const invoke: Invoke = (call, done) => {
    invokeApplication(call, (failed, outcome) => {
      try {
        done(failed, outcome);
      } catch (error) {
        failStep(error);
      }
    });
  };
  /** Rejects the step in progress when the run's signal aborts, for steps that may be abandoned. */
  let abandonStep: ((reason: unknown) => void) | undefined;
  /**
   * One callback-style session step as a promise. An abandonable step (token, load: their
   * continuations only call `done`) ends with the abort reason when the run stops, through the
   * one abort listener of the run rather than one listener per step (EventTarget is slow).
   */
  function step<T>(start: (done: (value: T) => void) => void, abandonOn?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      failStep = reject;
      abandonStep = abandonOn ? reject : undefined;
      if (abandonOn?.aborted) return reject(abandonOn.reason);
      start(resolve);
    });
  }

  const session = createPollSession<ClientError>({
    schedule,
    options: shared,
    store: cursorStore,
    emit,
    make: makeClientError,
    invoke,
    active: () => running !== undefined && !running.controller.signal.aborted,
  });
  let running: { controller: AbortController; done: Promise<PollerStopped> } | undefined;

  function emit(status: PollerStatus): void {
    if (!onStatus) return;
    try {
      onStatus(status);
    } catch (error) {
      reportStray('onStatus threw', error);
    }
  }

  /**
   * One attempt for p-retry: transient ClientErrors are thrown as they are (retried), everything
   * else wrapped in AbortError (ends the loop at once, without a pointless backoff delay).
   */
  async function pollOnce(signal: AbortSignal): Promise<number> {
    try {
      for (;;) {
        // A token function that never settles must not keep stop() waiting.
        const token = await step<{ failure?: ClientError; token?: string }>((done) => session.token((failure, value) => done({ failure, token: value })), signal);
        if (token.failure) throw token.failure;
        const request = session.pollRequest();
        const resend = new AbortController();
        resendPoll = () => resend.abort(RESEND);
        const answer = await sendRequest(fetchImpl, {
          method: request.body ? 'POST' : 'GET',
          url: new URL(request.path, baseUrl),
          token: token.token!,
          body: request.body,
          signal,
          abandon: resend.signal,
          timeoutMs: session.timeoutMs(),
        })
          .catch((error: unknown) => {
            if (error === RESEND && !signal.aborted) return undefined;
            throw error;
          })
          .finally(() => {
            resendPoll = undefined;
          });
        if (!answer) continue;
        // Not abandoned on stop: the callbacks in progress finish, and what they took is recorded.
        handingOver = true;
        const outcome = await step<PollOutcome<ClientError>>((done) => session.takeAnswer(answer, done)).finally(() => {
          handingOver = false;
        });
        if ('halted' in outcome) throw new AbortError(signal.reason as Error);
        if ('failure' in outcome) throw outcome.failure;
        if ('pauseMs' in outcome) return outcome.pauseMs;
      }
    } catch (error) {
      if (signal.aborted) throw new AbortError(signal.reason as Error);
      if (error instanceof ClientError && error.retryable) throw error;
      throw new AbortError(toClientError(error));
    }
  }

  async function run(controller: AbortController): Promise<PollerStopped> {
    const signal = controller.signal;
    const stopped = (): PollerStopped => ({ type: 'stopped', reason: signal.reason instanceof StopRequest ? signal.reason.reason : 'signal' });
    const abandon = () => abandonStep?.(signal.reason);
    signal.addEventListener('abort', abandon, { once: true });
    try {
      const loadFailure = await step<ClientError | undefined>((done) => session.load(done), signal);
      if (loadFailure) throw loadFailure;
      session.begin();
      while (!signal.aborted) {
        const pauseMs = await pRetry(() => pollOnce(signal), {
          retries: Number.POSITIVE_INFINITY,
          // Delays are the session's (jitter model, Retry-After), slept in onFailedAttempt; p-retry's stay 0.
          minTimeout: 0,
          factor: 1,
          signal,
          onFailedAttempt: async ({ error, attemptNumber }) => {
            // p-retry checks the signal after a successful attempt too: a stop is not a failure to report.
            if (signal.aborted) throw signal.reason;
            await sleep(session.retry(attemptNumber, toClientError(error)), signal);
          },
        });
        if (pauseMs > 0) await sleep(pauseMs, signal);
      }
      return stopped();
    } catch (error) {
      if (signal.aborted) return stopped();
      return { type: 'stopped', reason: 'error', error: toClientError(error) };
    } finally {
      signal.removeEventListener('abort', abandon);
    }
  }

  function start(): Promise<PollerStopped> {
    // Started again while the last run is still stopping: begin anew once it has ended.
    if (running?.controller.signal.aborted) return running.done.then(() => start());
    if (running) return running.done;
    const controller = new AbortController();
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
    // While an answer is handed over, stop() may well come from inside onMessages / onReceipts:
    // waiting for the loop would wait for that very callback, so resolve now; the loop ends as
    // soon as the callback returns.
    if (handingOver) return;
    await current.done;
  }

  function changeTopics(change: () => void): void {
    change();
    resendPoll?.();
  }

  return {
    start,
    stop,
    get cursor() {
      return session.cursor();
    },
    get clientId() {
      return session.clientId();
    },
    // The topics are the session's (through the resolved options); the poll in flight is this shell's.
    subscribe: (topic, from) => changeTopics(() => shared.topics.subscribe(topic, from)),
    unsubscribe: (topic) => changeTopics(() => shared.topics.unsubscribe(topic)),
  };
}

/**
 * A broken status handler must neither stop delivery nor crash a Node process: report it the way
 * the platform reports stray errors (browsers) or log it.
 */
function reportStray(what: string, error: unknown): void {
  const report = (globalThis as { reportError?: (error: unknown) => void }).reportError;
  if (typeof report === 'function') report(error);
  else console.error(`longpoll-gateway client: ${what}`, error);
}
