/* The legacy poll loop: callbacks and timers only. Every asynchronous continuation checks the run
   `generation` it was started in, so nothing scheduled before stop() can act after it. */

import { lpBackoffDelay, lpResolveBackoff } from './backoff.js';
import { lpDefaultStorageKey, lpLocalStorageCursorStore, lpMemoryCursorStore, lpToCheckpoint } from './cursor-store.js';
import { lpCreateSeenWindow, type LpSeenWindow } from './seen-ids.js';
import { lpHttpError, lpParseJson, lpSend } from './transport.js';
import type { LpCheckpoint, LpCursorStore, LpError, LpHttpResult, LpMessage, LpPoller, LpPollerOptions, LpRequestHandle, LpStatus } from './types.js';
import { lpBaseUrl, lpCallSafely, lpDescribe, lpError, lpIsArray, lpIsFiniteNumber, lpNumberOption, lpQuery, lpRequireFunction, lpTokenProvider } from './util.js';

/** Added to the long-poll wait before a silent connection counts as dead. */
export var LP_REQUEST_TIMEOUT_GRACE_MS = 15000;

export interface LpSchedule {
  waitSeconds: number;
  /** Milliseconds to pause after a successful poll that returned `received` messages. */
  pauseAfter(received: number, limit: number): number;
}

export function lpCreatePoller(options: LpPollerOptions, schedule: LpSchedule): LpPoller {
  if (!options || typeof options !== 'object') throw new TypeError('Expected poller options to be an object');
  lpRequireFunction('onMessages', options.onMessages);
  if (options.onStatus !== undefined) lpRequireFunction('onStatus', options.onStatus);
  var baseUrl = lpBaseUrl(options.url);
  var tokenFor = lpTokenProvider(options.token);
  var limit = lpNumberOption('limit', options.limit, 100, 1, 500, true);
  var dedupWindow = lpNumberOption('dedupWindow', options.dedupWindow, 1000, 1, undefined, true);
  var backoff = lpResolveBackoff(options.backoff, 'backoff.');
  var store = lpChooseStore(options, baseUrl, tokenFor());
  var onMessages = options.onMessages;
  var onStatus = options.onStatus;
  var waitSeconds = schedule.waitSeconds;

  var running = false;
  var generation = 0;
  var request: LpRequestHandle | null = null;
  var timer: ReturnType<typeof setTimeout> | undefined;
  var checkpoint: LpCheckpoint | undefined;
  var seen: LpSeenWindow | undefined;
  var failures = 0;
  var connected = false;

  var poller: LpPoller = {
    start: start,
    stop: function () {
      if (running) finish({ type: 'stopped', reason: 'stop' });
    },
    getCursor: function () {
      return checkpoint ? checkpoint.cursor : undefined;
    },
    cursor: undefined,
  };

  function start(): void {
    if (running) return;
    running = true;
    generation += 1;
    connected = false;
    failures = 0;
    if (!checkpoint) {
      var loaded: LpCheckpoint | number | undefined;
      try {
        loaded = store.load();
        checkpoint = loaded === undefined ? { cursor: 0, seen: { ids: [] } } : lpToCheckpoint(loaded);
      } catch (error) {
        var storeError = lpError('cursor_store_failed', 'Cursor store load() failed: ' + String(error), false, error);
        // Reported asynchronously so that start() never calls back before it returns.
        later(function () {
          finish({ type: 'stopped', reason: 'error', error: storeError });
        }, 0);
        return;
      }
      seen = lpCreateSeenWindow(dedupWindow, checkpoint.seen);
      poller.cursor = checkpoint.cursor;
    }
    later(poll, 0);
  }

  function finish(status: LpStatus): void {
    running = false;
    generation += 1;
    if (request) request.abort();
    request = null;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    lpCallSafely(onStatus, status);
  }

  /** setTimeout bound to the current run: a stop() in between cancels it. */
  function later(step: () => void, delayMs: number): void {
    var runGeneration = generation;
    timer = setTimeout(function () {
      timer = undefined;
      if (runGeneration === generation) step();
    }, delayMs);
  }

  function poll(): void {
    var runGeneration = generation;
    var state = checkpoint as LpCheckpoint;
    var url = baseUrl + 'v1/poll?' + lpQuery({ cursor: state.cursor, wait: waitSeconds, limit: limit, access_token: tokenFor() });
    request = lpSend('GET', url, undefined, waitSeconds * 1000 + LP_REQUEST_TIMEOUT_GRACE_MS, function (error, result) {
      request = null;
      if (runGeneration !== generation) return;
      if (error) retryAfter(error);
      else handle(result as LpHttpResult, runGeneration);
    });
  }

  function handle(result: LpHttpResult, runGeneration: number): void {
    var serverWaitMax = parseInt(result.header('X-Poll-Wait-Max') || '', 10);
    var clamped = serverWaitMax >= 0 && serverWaitMax < waitSeconds;
    if (clamped) waitSeconds = serverWaitMax;
    if (result.status < 200 || result.status > 299) {
      var httpError = lpHttpError(result);
      // Asked for a longer wait than this server allows: ask again at once with its maximum or,
      // when the error does not say what that is, with half the wait until one is accepted.
      if (result.status === 400 && httpError.code === 'invalid_wait' && (clamped || waitSeconds > 1)) {
        if (!clamped) waitSeconds = Math.floor(waitSeconds / 2);
        poll();
      } else if (httpError.retryable) retryAfter(httpError);
      else finish({ type: 'stopped', reason: 'error', error: httpError });
      return;
    }
    var body = lpParsePollBody(result.text);
    if (!body) {
      retryAfter(lpError('invalid_response', 'Expected a poll response with `messages` and `cursor`', true));
      return;
    }
    if (!connected) {
      connected = true;
      lpCallSafely(onStatus, { type: 'connected', cursor: (checkpoint as LpCheckpoint).cursor });
    }
    var fresh = lpFreshMessages(body.messages, seen as LpSeenWindow);
    if (fresh.length > 0) {
      try {
        onMessages(fresh, { cursor: body.cursor });
      } catch (callbackError) {
        // Not acknowledged, so the gateway redelivers the batch on the retry.
        retryAfter(lpError('callback_failed', 'onMessages threw: ' + String(callbackError), true, callbackError));
        return;
      }
      for (var index = 0; index < fresh.length; index++) (seen as LpSeenWindow).add((fresh[index] as LpMessage).id);
    }
    commit(body.cursor, fresh.length > 0);
    failures = 0;
    if (fresh.length > 0) lpCallSafely(onStatus, { type: 'messages', count: fresh.length, cursor: body.cursor });
    // stop() may have been called from inside onMessages or onStatus.
    if (runGeneration !== generation) return;
    if (body.superseded) {
      var delayMs = lpBackoffDelay(backoff, 1);
      lpCallSafely(onStatus, { type: 'superseded', delayMs: delayMs });
      later(poll, delayMs);
    } else {
      later(poll, schedule.pauseAfter(body.messages.length, limit));
    }
  }

  function commit(cursor: number, delivered: boolean): void {
    var changed = delivered || cursor !== (checkpoint as LpCheckpoint).cursor;
    checkpoint = { cursor: cursor, seen: (seen as LpSeenWindow).snapshot() };
    poller.cursor = cursor;
    if (!changed) return;
    try {
      store.save(checkpoint);
    } catch (ignored) {
      // Memory has moved on, so the next poll still acknowledges correctly; only resume suffers.
    }
  }

  function retryAfter(error: LpError): void {
    failures += 1;
    connected = false;
    var delayMs = Math.max(lpBackoffDelay(backoff, failures), error.retryAfterMs || 0);
    lpCallSafely(onStatus, { type: 'retrying', attempt: failures, delayMs: delayMs, error: error });
    later(poll, delayMs);
  }

  return poller;
}

export function lpChooseStore(options: LpPollerOptions, baseUrl: string, token: string): LpCursorStore {
  if (options.cursorStore) {
    if (typeof options.cursorStore.load !== 'function' || typeof options.cursorStore.save !== 'function') {
      throw new TypeError('Expected `cursorStore` to have `load()` and `save(checkpoint)` methods');
    }
    return options.cursorStore;
  }
  if (options.storageKey === false) return lpMemoryCursorStore();
  if (options.storageKey !== undefined && (typeof options.storageKey !== 'string' || !options.storageKey)) {
    throw new TypeError('Expected `storageKey` to be a non-empty string or false, got ' + lpDescribe(options.storageKey));
  }
  var key = options.storageKey || lpDefaultStorageKey(baseUrl, token);
  return key ? lpLocalStorageCursorStore(key) : lpMemoryCursorStore();
}

/** Null unless the body has the documented shape. */
export function lpParsePollBody(text: string): { messages: LpMessage[]; cursor: number; superseded: boolean } | null {
  var body = lpParseJson(text) as { messages?: unknown; cursor?: unknown; superseded?: unknown } | undefined;
  if (!body || typeof body !== 'object' || !lpIsArray(body.messages) || !lpIsFiniteNumber(body.cursor) || body.cursor < 0) return null;
  for (var index = 0; index < body.messages.length; index++) {
    var message = body.messages[index] as LpMessage;
    if (!message || !lpIsFiniteNumber(message.id) || typeof message.from !== 'string') return null;
  }
  return { messages: body.messages as LpMessage[], cursor: body.cursor, superseded: body.superseded === true };
}

/** Messages not seen before, without repeats inside the batch; keeps the server's order. */
export function lpFreshMessages(messages: LpMessage[], seen: LpSeenWindow): LpMessage[] {
  var fresh: LpMessage[] = [];
  var inBatch: { [id: string]: boolean } = {};
  for (var index = 0; index < messages.length; index++) {
    var message = messages[index] as LpMessage;
    if (seen.has(message.id) || inBatch[message.id] === true) continue;
    inBatch[message.id] = true;
    fresh.push(message);
  }
  return fresh;
}

export function lpCreateLongPoller(options: LpPollerOptions): LpPoller {
  var wait = lpNumberOption('wait', options && options.wait, 25, 1, undefined, true);
  return lpCreatePoller(options, {
    waitSeconds: wait,
    pauseAfter: function () {
      return 0;
    },
  });
}

export function lpCreateShortPoller(options: LpPollerOptions): LpPoller {
  var intervalMs = lpNumberOption('intervalMs', options && options.intervalMs, 5000, 0);
  return lpCreatePoller(options, {
    waitSeconds: 0,
    pauseAfter: function (received: number, limit: number) {
      return received >= limit ? 0 : intervalMs;
    },
  });
}
