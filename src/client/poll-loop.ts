import { linkedController, sleep } from './abortable.js';
import { jitteredDelay, retryDelay, type BackoffOptions } from './core/backoff.js';
import { memoryCursorStore } from './core/checkpoint.js';
import { callbackFailure, httpFailure, isSuccess, type HttpAnswer } from './core/failures.js';
import { parsePollResponse } from './core/poll-response.js';
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
import { ClientError, ClientHttpError, makeClientError, toClientError } from './errors.js';
import { sendRequest } from './http.js';
import { createStreamAcks } from './transports/acks.js';
import { createTransportChoice } from './transports/choice.js';
import { openEventStream } from './transports/event-stream.js';
import type { StreamConnection, StreamEnd, StreamFrame } from './transports/frames.js';
import type { PollerTransport, ResolvedTransportOptions } from './transports/options.js';
import { isClosedBeforeOpen, openWebSocket } from './transports/websocket.js';
import type { DeliveryReceipt, FetchLike, PollMessage, PresenceEvent } from './types.js';
import { parseBaseUrl, requireAbortSignal, resolveFetch } from './validate.js';

export type { MessageContext, PollSchedule };

/**
 * What a poller reports through `onStatus`: `connected` (with the transport in use), `messages`,
 * `superseded`, `retrying` (with the ClientError and the delay before the next attempt), and
 * finally `stopped`.
 *
 * @example
 * onStatus: (status: PollerStatus) => {
 *   if (status.type === 'retrying') banner(`Reconnecting in ${Math.round(status.delayMs / 1000)} s`);
 *   if (status.type === 'connected') banner(null);
 * }
 */
export type PollerStatus = PollerConnected | Exclude<PollProgress<ClientError>, { type: 'connected' }> | PollerStopped;

/**
 * Reported after `start()`, after a run of failures, and whenever the transport changes (a
 * fallback, or a probe that found a better one working): for a stream once it opened, for polls
 * at the first answer. `cursor` is the checkpoint's.
 *
 * @example
 * onStatus: (status) => status.type === 'connected' && metrics.transport(status.transport)
 */
export type PollerConnected = { type: 'connected'; cursor: number; transport: PollerTransport | 'short-poll' };

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
   * The JWT, or a function returning the current one (called before every request, stream
   * connection and ack). When the function throws or rejects, the poll or connection is retried
   * after a backoff delay (`token_unavailable`).
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
   * Aborts the request, stream or delay in flight and resolves once the loop has ended. A callback
   * in progress finishes first (what it took is recorded); nothing is handed over or reported after
   * it (a stream's ack still owed is sent). While `onMessages` / `onReceipts` run (stop() may be
   * called from inside them), it resolves at once instead, and the loop ends as soon as the
   * callback returns.
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
   * (positions of topics nobody subscribed to by then are dropped). A poll held open (or a stream)
   * at the time is abandoned and sent again (reconnected) at once with the change, so it applies
   * now rather than when that poll ends; a change made inside `onMessages` applies from the next
   * poll (or connection). Works while stopped too.
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

/** Why a connection in flight was abandoned for one with the changed topics (not a failure). */
const RESEND = new Error('Topics changed: connecting again');
/** Why a connection in flight was abandoned for a probe of a better transport (not a failure). */
const SWITCH = new Error('Probing a better transport');

/** A POST /v1/ack is small: an answer later than this is a connection that died. */
const ACK_TIMEOUT_MS = 10_000;

class StopRequest extends Error {
  constructor(readonly reason: 'stop' | 'signal') {
    super(`Poller stopped (${reason})`);
  }
}

/**
 * The modern shell around the shared poll session: fetch + AbortController for requests, promises
 * for application code that answers asynchronously, and the choice of transport. Polls, SSE events
 * and WebSocket batches are all poll answers, handed to the same `session.takeAnswer`; only how
 * they arrive and how they are acked differs.
 */
export function createPollLoop<Body>(
  options: CommonPollerOptions<Body>,
  schedule: PollSchedule,
  transports: ResolvedTransportOptions,
  pollingName: 'long-poll' | 'short-poll' = 'long-poll',
): Poller {
  const shared = resolvePollerOptions(options as Parameters<typeof resolvePollerOptions>[0]);
  const baseUrl = parseBaseUrl('url', options.url);
  const fetchImpl = resolveFetch(options.fetch);
  const external = requireAbortSignal('signal', options.signal);
  const cursorStore = options.cursorStore ?? memoryCursorStore();
  if (typeof cursorStore?.load !== 'function' || typeof cursorStore.save !== 'function') {
    throw new TypeError('Expected `cursorStore` to have `load()` and `save(checkpoint)` methods');
  }
  const onStatus = shared.onStatus as ((status: PollerStatus) => void) | undefined;
  const tokenIsFunction = typeof options.token === 'function';

  /** Rejects the step in progress when the session's own continuation throws (a bug, not an outcome). */
  let failStep: (error: unknown) => void = (error) => reportStray('the poll loop failed', error);
  /** An answer is being handed to the application (its callbacks may be running right now). */
  let handingOver = false;
  /** Abandons the connection in flight (a poll held open, a stream between two answers). */
  let interruptConnection: ((reason: Error) => void) | undefined;
  /** The transport of the connection in use, as `connected` names it. */
  let connectedVia: PollerTransport = 'long-poll';
  /**
   * The transport `connected` was last reported for, until a failure: reported again only for
   * another one (a probe that failed and came back reports nothing). The session reports
   * `connected` after every failure; the filter is here.
   */
  let announcedVia: PollerTransport | undefined;
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
  // An answer being handed over finishes first: the connection is left between two answers.
  const choice = createTransportChoice(transports, () => interruptConnection?.(SWITCH));
  const acks = createStreamAcks({
    post: async (cursor) => {
      const token = await new Promise<string>((resolve, reject) => session.token((failure, value) => (failure ? reject(failure) : resolve(value!))));
      const answer = await sendRequest(fetchImpl, { method: 'POST', url: new URL('v1/ack', baseUrl), token, body: { cursor }, timeoutMs: ACK_TIMEOUT_MS });
      if (!isSuccess(answer)) throw makeClientError(httpFailure(answer));
    },
    retryDelayMs: (attempt, error) => retryDelay(shared.backoff, attempt, error as { retryAfterMs?: number }),
  });

  function emit(status: PollerStatus | PollProgress<ClientError>): void {
    if (status.type === 'connected') {
      if (announcedVia === connectedVia) return;
      announcedVia = connectedVia;
      status = { type: 'connected', cursor: status.cursor, transport: connectedVia === 'long-poll' ? pollingName : connectedVia };
    }
    if (!onStatus) return;
    try {
      onStatus(status as PollerStatus);
    } catch (error) {
      reportStray('onStatus threw', error);
    }
  }

  function askToken(signal: AbortSignal): Promise<string> {
    // A token function that never settles must not keep stop() waiting.
    return step<{ failure?: ClientError; token?: string }>((done) => session.token((failure, value) => done({ failure, token: value })), signal).then((result) => {
      if (result.failure) throw result.failure;
      return result.token!;
    });
  }

  /** One poll (again at once after a change of topics or a lowered `wait`); resolves with the pause after it. */
  async function pollOnce(signal: AbortSignal): Promise<number> {
    for (;;) {
      const token = await askToken(signal);
      if (choice.probeDue) throw SWITCH;
      const request = session.pollRequest();
      const resend = new AbortController();
      interruptConnection = (reason) => resend.abort(reason);
      const answer = await sendRequest(fetchImpl, {
        method: request.body ? 'POST' : 'GET',
        url: new URL(request.path, baseUrl),
        token,
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
          interruptConnection = undefined;
        });
      if (!answer) continue;
      const outcome = await takeAnswer(answer, signal);
      if ('failure' in outcome) throw outcome.failure;
      if ('pauseMs' in outcome) {
        choice.worked();
        return outcome.pauseMs;
      }
    }
  }

  /** Hands one answer over; not abandoned on stop: the callbacks in progress finish, and what they took is recorded. */
  async function takeAnswer(answer: HttpAnswer, signal: AbortSignal): Promise<Exclude<PollOutcome<ClientError>, { halted: true }>> {
    handingOver = true;
    const outcome = await step<PollOutcome<ClientError>>((done) => session.takeAnswer(answer, done)).finally(() => {
      handingOver = false;
    });
    if ('halted' in outcome) throw signal.reason;
    return outcome;
  }

  /**
   * One stream connection (again at once after a change of topics, an expired token, or a first
   * 401 when the token is a function); resolves with the pause before the next one once the
   * gateway ended it.
   */
  async function streamOnce(transport: 'sse' | 'websocket', signal: AbortSignal, opened: () => void): Promise<number> {
    let freshTokenAsked = false;
    for (;;) {
      const token = await askToken(signal);
      if (choice.probeDue) throw SWITCH;
      const interrupt = new AbortController();
      interruptConnection = (reason) => interrupt.abort(reason);
      const link = linkedController([signal, interrupt.signal]);
      const connection = connectStream(transport, token, link.signal);
      let end: StreamEnd;
      try {
        for (;;) {
          const next = await connection.frames.next();
          if (next.done) {
            end = next.value;
            break;
          }
          // Read before the stop or the change: not handed over (the next connection reads it again).
          if (link.signal.aborted) throw link.signal.reason;
          if (next.value.type !== 'open') {
            await takeFrame(next.value, signal);
            continue;
          }
          freshTokenAsked = false;
          choice.worked();
          opened();
          acks.sendFrames(connection.send && ((cursor) => connection.send!(JSON.stringify({ type: 'ack', cursor }))));
          acks.opened(session.cursor());
          emit({ type: 'connected', cursor: session.cursor()!, transport });
        }
      } catch (thrown) {
        if (signal.aborted) throw signal.reason;
        if (thrown === RESEND) continue;
        const error = isClosedBeforeOpen(thrown) ? await explainClosedWebSocket(thrown, token, signal) : thrown;
        // A token cached past its expiry: one more try with what the function answers now.
        if (error instanceof ClientHttpError && error.status === 401 && tokenIsFunction && !freshTokenAsked) {
          freshTokenAsked = true;
          continue;
        }
        throw error;
      } finally {
        interruptConnection = undefined;
        acks.sendFrames(undefined);
        link.dispose();
        await connection.frames.return(undefined as never);
      }
      if (end.reason === 'token_expired') continue;
      if (end.reason === 'ended') return end.reconnectAfterMs;
      const delayMs = jitteredDelay(shared.backoff, 1);
      if (end.reason === 'superseded') emit({ type: 'superseded', delayMs });
      return delayMs;
    }
  }

  function connectStream(transport: 'sse' | 'websocket', token: string, signal: AbortSignal): StreamConnection {
    const query = new URLSearchParams({ cursor: String(session.cursor()), limit: String(shared.limit), client: session.clientId()! });
    const topics = shared.topics.reading();
    for (const name in topics) query.append('topic', topics[name] === null ? name : `${name}@${topics[name]}`);
    if (topics && shared.onPresence) query.set('presence', '1');
    if (transport === 'sse') return openEventStream(fetchImpl, { url: new URL(`v1/stream?${query}`, baseUrl), token, signal, silenceMs: transports.fallbackAfterMs });
    // Browsers cannot set headers on a WebSocket: the gateway takes the token from the query (and never logs it).
    query.set('access_token', token);
    const url = new URL(`v1/ws?${query}`, baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return openWebSocket(transports.WebSocket!, { url, signal, openWithinMs: transports.fallbackAfterMs });
  }

  /**
   * A WebSocket that closed before it opened says nothing of why (browsers hide the refusal's
   * status). A poll of the same query, answered at once, does: the gateway's refusal (401, 403
   * `forbidden_topic`, ...) is then this connection's failure, as on the other transports, and an
   * answer means the WebSocket alone does not get through. The poll acks the checkpoint's cursor,
   * which was taken and saved; its messages are left to the stream. It asks for no presence
   * events: kept nowhere, they would be lost.
   */
  async function explainClosedWebSocket(error: unknown, token: string, signal: AbortSignal): Promise<unknown> {
    const request = session.pollRequest();
    const url = new URL(request.path, baseUrl);
    const body = request.body && { ...request.body, wait: 0, presence: undefined };
    if (!body) url.searchParams.set('wait', '0');
    try {
      const answer = await sendRequest(fetchImpl, { method: body ? 'POST' : 'GET', url, token, body, signal, timeoutMs: transports.fallbackAfterMs });
      return isSuccess(answer) ? error : makeClientError(httpFailure(answer));
    } catch (failure) {
      return signal.aborted ? failure : error;
    }
  }

  /**
   * A stream's answer goes through the session like a poll's: read against the topics as they are
   * now (those of the connection, which a change of topics replaces), then acked once taken and
   * saved. WebSocket presence frames come apart from batches and are handed to onPresence alone.
   */
  async function takeFrame(frame: Exclude<StreamFrame, { type: 'open' }>, signal: AbortSignal): Promise<void> {
    if (frame.type === 'answer') {
      session.pollRequest();
      const outcome = await takeAnswer({ status: 200, text: frame.text, header: () => null }, signal);
      if ('failure' in outcome) throw outcome.failure;
      acks.ack(session.cursor()!);
      return;
    }
    const checked = parsePollResponse({ messages: [], cursor: 0, presence: frame.events });
    if ('failure' in checked) throw makeClientError(checked.failure);
    const events = checked.response.presence;
    const onPresence = shared.onPresence;
    if (!onPresence || events.length === 0) return;
    handingOver = true;
    const thrown = await step<{ error: unknown } | undefined>((done) => invoke(() => onPresence(events), (failed, error) => done(failed ? { error } : undefined))).finally(() => {
      handingOver = false;
    });
    if (thrown) throw makeClientError(callbackFailure(thrown.error, 'onPresence'));
  }

  /**
   * One exchange on the transport of the moment: a poll, or a stream connection until it ends.
   * A transport that fails its way (see TransportChoice) is left for the next at once.
   */
  async function exchange(signal: AbortSignal, opened: () => void): Promise<number> {
    for (;;) {
      const { transport, switched } = choice.next();
      // A poll reports `connected` with its first answer: on another transport, again.
      if (switched) session.begin();
      connectedVia = transport;
      try {
        return transport === 'long-poll' ? await pollOnce(signal) : await streamOnce(transport, signal, opened);
      } catch (error) {
        if (signal.aborted) throw error;
        if (error === SWITCH || choice.fallBackAfter(error)) continue;
        throw error;
      }
    }
  }

  async function run(controller: AbortController): Promise<PollerStopped> {
    const signal = controller.signal;
    const stopped = (): PollerStopped => ({ type: 'stopped', reason: signal.reason instanceof StopRequest ? signal.reason.reason : 'signal' });
    const abandon = () => abandonStep?.(signal.reason);
    signal.addEventListener('abort', abandon, { once: true });
    acks.resume();
    try {
      const loadFailure = await step<ClientError | undefined>((done) => session.load(done), signal);
      if (loadFailure) throw loadFailure;
      session.begin();
      announcedVia = undefined;
      // Retries counted here rather than by p-retry: a stream that opened ends a run of failures
      // in the middle of its attempt, and the next failure is the first again.
      let attempt = 0;
      while (!signal.aborted) {
        let pauseMs: number;
        try {
          pauseMs = await exchange(signal, () => (attempt = 0));
          attempt = 0;
        } catch (error) {
          if (signal.aborted) break;
          const failure = toClientError(error);
          if (!failure.retryable) throw failure;
          attempt += 1;
          announcedVia = undefined;
          choice.failed();
          await sleep(session.retry(attempt, failure), signal);
          continue;
        }
        if (pauseMs > 0) await sleep(pauseMs, signal);
      }
      return stopped();
    } catch (error) {
      if (signal.aborted) return stopped();
      return { type: 'stopped', reason: 'error', error: toClientError(error) };
    } finally {
      signal.removeEventListener('abort', abandon);
      choice.pause();
      acks.pause();
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
    interruptConnection?.(RESEND);
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
    // The topics are the session's (through the resolved options); the connection in flight is this shell's.
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
