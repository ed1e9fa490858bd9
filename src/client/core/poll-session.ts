/**
 * The protocol half of a poller, written once for both builds: where to resume, what to ask for,
 * what an answer means, what the application is handed (each message once, in order), when the
 * checkpoint is saved and how long to wait before the next poll. It owns no transport and no
 * timer: a shell sends the request it describes and schedules the next step (fetch + p-retry in
 * the modern client, XMLHttpRequest + setTimeout in the legacy one).
 *
 * Every call into application code (token function, callbacks, cursor store) goes through the
 * shell's `invoke`, so the same steps run whether that code answers at once or with a promise.
 */
import { jitteredDelay, retryDelay } from './backoff.js';
import { toCheckpoint, type PollCheckpoint } from './checkpoint.js';
import {
  callbackFailure,
  cursorStoreFailure,
  httpFailure,
  isSuccess,
  successBody,
  type CallbackName,
  type ClientFailure,
  type HttpAnswer,
  type MakeFailure,
} from './failures.js';
import type { ErrorCode } from '../../error-codes.js';
import { parsePollResponse } from './poll-response.js';
import { randomId } from './random-id.js';
import { createSeenIdWindow, type SeenIdWindow } from './seen-ids.js';
import type { TopicStarts } from './topics.js';
import { currentToken, type ResolvedPollerOptions } from './poller-options.js';
import { queryString } from './validate.js';

/**
 * Runs `call` (application code, which may answer at once or with a promise) and reports how it
 * ended: `done(false, result)` or `done(true, error)`.
 */
export type Invoke = (call: () => unknown, done: (failed: boolean, outcome: unknown) => void) => void;

/**
 * The Invoke both builds use: a plain value or a throw continues at once, a thenable when it
 * settles (through its own `then`, so no Promise global is needed: an async callback works in the
 * legacy build too, wherever the browser has promises).
 */
export function invokeApplication(call: () => unknown, done: (failed: boolean, outcome: unknown) => void): void {
  let value: unknown;
  try {
    value = call();
  } catch (error) {
    return done(true, error);
  }
  const then = value !== null && (typeof value === 'object' || typeof value === 'function') ? (value as { then?: unknown }).then : undefined;
  if (typeof then !== 'function') return done(false, value);
  then.call(
    value,
    function (resolved: unknown) {
      done(false, resolved);
    },
    function (error: unknown) {
      done(true, error);
    },
  );
}

/** What a poller reports through `onStatus`, besides `stopped` (which the shell reports). */
export type PollProgress<Failure> =
  /** The first successful poll after `start()` or after a run of failures. */
  | { type: 'connected'; cursor: number }
  /** A batch was handed to `onMessages` and the checkpoint saved. `count` excludes duplicates. */
  | { type: 'messages'; count: number; cursor: number }
  /** A newer poll for the same user replaced ours; polling again after `delayMs`. */
  | { type: 'superseded'; delayMs: number }
  /** A poll failed with a transient error; retry number `attempt` follows after `delayMs`. */
  | { type: 'retrying'; attempt: number; delayMs: number; error: Failure };

/**
 * @example
 * onMessages: (messages, { cursor }: MessageContext) => db.saveBatch(messages, cursor)
 */
export interface MessageContext {
  /** The cursor that will be saved (and sent with the next poll) once `onMessages` and `onReceipts` return. */
  cursor: number;
}

/** How the two poller flavours differ: the `wait` they ask for and the pause after a success. */
export interface PollSchedule {
  waitSeconds: number;
  /** Milliseconds to pause after a successful poll that returned `received` entries (0 = poll at once). */
  pauseAfter(received: number, limit: number): number;
}

export interface PollSessionConfig<Failure extends ClientFailure> {
  schedule: PollSchedule;
  /** The shared options as resolvePollerOptions checked them (its `topics` change with subscribe/unsubscribe). */
  options: ResolvedPollerOptions;
  store: { load(): unknown; save(checkpoint: PollCheckpoint): unknown };
  /** Must not throw (the shell guards the application's handler). */
  emit: (progress: PollProgress<Failure>) => void;
  make: MakeFailure<Failure>;
  /** Default invokeApplication; a shell may wrap it (to route its own bugs somewhere). */
  invoke?: Invoke;
  /**
   * False once the shell was stopped: from then on the session hands nothing more to the
   * application and reports nothing, only finishes the bookkeeping of what was handed over.
   */
  active(): boolean;
}

/**
 * How one answer ended: ask again at once (the wait was clamped), fail, pause and poll on, or
 * halted (the shell stopped before the answer was handed over in full).
 */
export type PollOutcome<Failure> = { again: true } | { failure: Failure } | { pauseMs: number } | { halted: true };

/** The gateway's answer to a `wait` above its maximum (checked against the error table at compile time). */
const WAIT_TOO_LONG: ErrorCode = 'invalid_wait';

/** Added to the long-poll wait before a silent connection counts as dead. */
export const REQUEST_TIMEOUT_GRACE_MS = 15000;

/** One poll, relative to the gateway's base URL: a GET when `body` is absent, else a POST of it as JSON. */
export interface PollRequest {
  path: string;
  body?: { cursor: number; wait: number; limit: number; client: string; topics?: TopicStarts; presence?: true };
}

export interface PollSession<Failure> {
  /** Loads the checkpoint once (later runs keep what memory holds); a failure is fatal. */
  load(done: (failure?: Failure) => void): void;
  /** Call at every start: the next success reports `connected` again. */
  begin(): void;
  cursor(): number | undefined;
  /** The `client` every poll carries: the checkpoint's, or one made up at load; undefined before. */
  clientId(): string | undefined;
  /** The current token, or a retryable `token_unavailable` failure when the token function throws. */
  token(done: (failure: Failure | undefined, token?: string) => void): void;
  /**
   * The next poll: `GET v1/poll?cursor=…&wait=…&limit=…&client=…`, or a POST of the same as JSON
   * with the topics when it reads any (and `presence: true` when there is an onPresence). Its
   * answer must go to takeAnswer.
   */
  pollRequest(): PollRequest;
  timeoutMs(): number;
  /**
   * Takes a poll's HTTP answer: hands its messages to the application, saves the checkpoint, and
   * says what comes next (poll again, retry after a failure, or stop).
   */
  takeAnswer(answer: HttpAnswer, done: (outcome: PollOutcome<Failure>) => void): void;
  /** Reports retry number `attempt` after `failure` and returns how long to wait before it. */
  retry(attempt: number, failure: Failure): number;
}

export function createPollSession<Failure extends ClientFailure>(config: PollSessionConfig<Failure>): PollSession<Failure> {
  const make = config.make;
  const options = config.options;
  const invoke = config.invoke || invokeApplication;
  let waitSeconds = config.schedule.waitSeconds;
  let checkpoint: PollCheckpoint | undefined;
  /** The `client` of every poll: set with the checkpoint, and saved in it. */
  let clientId: string | undefined;
  let seen: SeenIdWindow;
  let seenReceipts: SeenIdWindow;
  /**
   * What memory holds is not saved yet (the last save failed, or the client id is new): save
   * after the next poll even when nothing new arrived.
   */
  let unsaved = false;
  let saveFailures = 0;
  let connected = false;
  const subscriptions = options.topics;
  /** The topic positions in the checkpoint last saved (or loaded), as JSON. */
  let savedPositionsJson: string | undefined;
  /** The topics the poll in flight asked for: its answer is read against them. */
  let asked: TopicStarts | undefined;

  function emit(progress: PollProgress<Failure>): void {
    if (config.active()) config.emit(progress);
  }

  function retrying(attempt: number, delayMs: number, error: Failure): void {
    emit({ type: 'retrying', attempt: attempt, delayMs: delayMs, error: error });
  }

  function load(done: (failure?: Failure) => void): void {
    if (checkpoint) return done();
    invoke(
      function () {
        return config.store.load();
      },
      function (failed, loaded) {
        try {
          if (failed) throw loaded;
          checkpoint = toCheckpoint(loaded === undefined ? 0 : loaded);
        } catch (error) {
          return done(make(cursorStoreFailure('load', error)));
        }
        // A new id (no checkpoint, or one from before presence) is saved after the first poll, so
        // that a restart resumes under it even when nothing arrived meanwhile.
        unsaved = !checkpoint.clientId;
        clientId = checkpoint.clientId || randomId(22);
        subscriptions.restore(checkpoint.topics);
        savedPositionsJson = JSON.stringify(checkpoint.topics);
        seen = createSeenIdWindow(options.dedupWindow, checkpoint.seen);
        seenReceipts = createSeenIdWindow(options.dedupWindow, checkpoint.seenReceipts, false);
        done();
      },
    );
  }

  function token(done: (failure: Failure | undefined, token?: string) => void): void {
    currentToken(options.token, invoke, function (failure, value) {
      done(failure && make(failure), value);
    });
  }

  function takeAnswer(answer: HttpAnswer, done: (outcome: PollOutcome<Failure>) => void): void {
    const serverWaitMax = parseInt(answer.header('X-Poll-Wait-Max') || '', 10);
    const clamped = serverWaitMax >= 0 && serverWaitMax < waitSeconds;
    if (clamped) waitSeconds = serverWaitMax;
    if (!isSuccess(answer)) {
      const failure = httpFailure(answer);
      // Asked for a longer wait than this server allows: ask again at once with its maximum or,
      // when the error does not say what that is, with half the wait until one is accepted.
      if (answer.status === 400 && failure.code === WAIT_TOO_LONG && (clamped || waitSeconds > 1)) {
        if (!clamped) waitSeconds = Math.floor(waitSeconds / 2);
        return done({ again: true });
      }
      return done({ failure: make(failure) });
    }
    const parsed = successBody(answer);
    const checked = 'failure' in parsed ? parsed : parsePollResponse(parsed.body);
    if ('failure' in checked) return done({ failure: make(checked.failure) });
    const response = checked.response;
    const topics = subscriptions.answer(asked || {}, response);
    if (topics.failure) return done({ failure: make(topics.failure) });
    if (!connected) {
      connected = true;
      emit({ type: 'connected', cursor: (checkpoint as PollCheckpoint).cursor });
    }
    const cursor = response.cursor;
    const context: MessageContext = { cursor: cursor };
    const fresh = unseen(topics.mailbox, seen).concat(topics.fresh);
    const freshReceipts = options.onReceipts ? unseen(response.receipts, seenReceipts) : [];
    reportResets();

    /**
     * Tells onReset of each reset (taking them off the answer's), one after the other, before the
     * messages, which continue after the gap a reset reports. A throw is retried like one from
     * onMessages: the poll is sent again from the same positions, so the reset comes again too.
     */
    function reportResets(): void {
      const reset = topics.resets.shift();
      const onReset = options.onReset;
      if (reset) {
        return handOver(
          [reset],
          undefined,
          onReset &&
            function () {
              return onReset(reset.topic, reset.earliest);
            },
          'onReset',
          reportResets,
        );
      }
      handOver(fresh, seen, options.onMessages, 'onMessages', function () {
        // Handed over: the topics move on with the mailbox's seen ids, whatever happens next.
        topics.take();
        handOver(freshReceipts, seenReceipts, options.onReceipts, 'onReceipts', function () {
          // Last: joins and leaves are kept nowhere, so a throw here costs no message a second hand-over.
          handOver(response.presence, undefined, options.onPresence, 'onPresence', saveAndPollOn);
        });
      });
    }

    /**
     * Hands `items` to the application, then records their ids and goes on with `next`; a throw
     * (or a stop) ends the answer instead. If the callback throws, the response is polled again
     * and whatever was not recorded is handed over once more. Topic messages are recorded by their
     * topic's position instead (`take`), not in the window; resets and presence events nowhere.
     */
    function handOver<Item>(
      items: Item[],
      window: SeenIdWindow | undefined,
      callback: ((items: Item[], context: MessageContext) => unknown) | undefined,
      name: CallbackName,
      next: () => void,
    ): void {
      if (items.length === 0 || !callback) return next();
      // Stopped meanwhile (from inside an earlier callback or a status handler): hand nothing more over.
      if (!config.active()) return done({ halted: true });
      invoke(
        function () {
          return callback(items, context);
        },
        function (failed, error) {
          if (failed) return done({ failure: make(callbackFailure(error, name)) });
          for (let index = 0; window && index < items.length; index++) {
            const item = items[index] as { id: number; topic?: string };
            if (item.topic === undefined) window.add(item.id);
          }
          next();
        },
      );
    }

    /** Saves the checkpoint once everything was handed over, when anything in it changed. */
    function saveAndPollOn(): void {
      const positions = subscriptions.positions();
      // Compared as JSON: only a change of what would be saved is one (a topic read 'now' is not, yet).
      const positionsJson = JSON.stringify(positions);
      const changed = positionsJson !== savedPositionsJson || unsaved || fresh.length > 0 || freshReceipts.length > 0 || cursor !== (checkpoint as PollCheckpoint).cursor;
      savedPositionsJson = positionsJson;
      checkpoint = { cursor: cursor, clientId: clientId, seen: seen.snapshot() };
      // Left out while empty, so checkpoints of apps without receipts or topics keep their old shape.
      const receiptIds = seenReceipts.snapshot();
      if (receiptIds.ids.length > 0) checkpoint.seenReceipts = receiptIds;
      if (positions) checkpoint.topics = positions;
      if (!changed) return pollOn();
      const saving = checkpoint;
      invoke(
        function () {
          return config.store.save(saving);
        },
        function (failed, error) {
          unsaved = failed;
          pollOn(failed ? make(cursorStoreFailure('save', error)) : undefined);
        },
      );
    }

    /**
     * A failed save does not fail the poll: memory already moved on, so the next poll
     * acknowledges correctly and saves again; it is reported as `retrying` (the save is), and
     * polling keeps its pace, so a full storage quota does not slow delivery down.
     */
    function pollOn(saveFailure?: Failure): void {
      if (fresh.length > 0) emit({ type: 'messages', count: fresh.length, cursor: cursor });
      const pauseMs = response.superseded
        ? jitteredDelay(options.backoff, 1)
        : // Receipts fill the page like messages (they hold places in the mailbox sequence).
          config.schedule.pauseAfter(response.messages.length + response.receipts.length, options.limit);
      saveFailures = saveFailure ? saveFailures + 1 : 0;
      if (saveFailure) retrying(saveFailures, pauseMs, saveFailure);
      if (response.superseded) emit({ type: 'superseded', delayMs: pauseMs });
      done({ pauseMs: pauseMs });
    }
  }

  return {
    load: load,
    begin: function () {
      connected = false;
    },
    cursor: function () {
      return checkpoint ? checkpoint.cursor : undefined;
    },
    clientId: function () {
      return clientId;
    },
    token: token,
    pollRequest: function () {
      const query: NonNullable<PollRequest['body']> = { cursor: (checkpoint as PollCheckpoint).cursor, wait: waitSeconds, limit: options.limit, client: clientId as string };
      asked = subscriptions.reading();
      if (!asked) return { path: 'v1/poll?' + queryString(query) };
      // Topics always go in a body: 64 names of up to 128 characters (and a legacy client's token)
      // would not fit the URL length old browsers and proxies allow, and a body keeps them out of
      // access logs. text/plain keeps the legacy build's POST free of a CORS preflight.
      query.topics = asked;
      // Presence is of topics: a poll that reads none has none to ask for.
      if (options.onPresence) query.presence = true;
      return { path: 'v1/poll', body: query };
    },
    timeoutMs: function () {
      return waitSeconds * 1000 + REQUEST_TIMEOUT_GRACE_MS;
    },
    takeAnswer: takeAnswer,
    retry: function (attempt, failure) {
      connected = false;
      const delayMs = retryDelay(options.backoff, attempt, failure);
      retrying(attempt, delayMs, failure);
      return delayMs;
    },
  };
}

/** The items whose id `window` has not seen, without repeats inside the batch, in the server's order. */
function unseen<Item extends { id: number }>(items: Item[], window: SeenIdWindow): Item[] {
  const fresh: Item[] = [];
  let highest = -Infinity;
  for (let index = 0; index < items.length; index++) {
    const item = items[index] as Item;
    // Ids mostly ascend (receipts need not): only an id not above the highest so far can repeat one.
    if (window.has(item.id) || (item.id <= highest && repeats(fresh, item.id))) continue;
    if (item.id > highest) highest = item.id;
    fresh.push(item);
  }
  return fresh;
}

function repeats(items: Array<{ id: number }>, id: number): boolean {
  for (let index = 0; index < items.length; index++) if ((items[index] as { id: number }).id === id) return true;
  return false;
}
