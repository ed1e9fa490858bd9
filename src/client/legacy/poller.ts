/* The legacy poll loop: callbacks and timers only. Every asynchronous continuation checks the run
   `generation` it was started in, so nothing scheduled before stop() can act after it. */

import { lpBackoffDelay, lpResolveBackoff } from './backoff.js';
import { lpDefaultStorageKey, lpLocalStorageCursorStore, lpMemoryCursorStore, lpToCheckpoint } from './cursor-store.js';
import { lpCreateSeenWindow, type LpSeenWindow } from './seen-ids.js';
import { lpHttpError, lpParseJson, lpSend } from './transport.js';
import type { LpCheckpoint, LpCursorStore, LpError, LpHttpResult, LpMessage, LpPoller, LpPollerOptions, LpReceipt, LpRequestHandle, LpStatus } from './types.js';
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
  if (options.onReceipts !== undefined) lpRequireFunction('onReceipts', options.onReceipts);
  var baseUrl = lpBaseUrl(options.url);
  var tokenFor = lpTokenProvider(options.token);
  var limit = lpNumberOption('limit', options.limit, 100, 1, 500, true);
  var dedupWindow = lpNumberOption('dedupWindow', options.dedupWindow, 1000, 1, undefined, true);
  var backoff = lpResolveBackoff(options.backoff, 'backoff.');
  var store = lpChooseStore(options, baseUrl, tokenFor());
  var onMessages = options.onMessages;
  var onReceipts = options.onReceipts;
  var onStatus = options.onStatus;
  var waitSeconds = schedule.waitSeconds;

  var running = false;
  var generation = 0;
  var request: LpRequestHandle | null = null;
  var timer: ReturnType<typeof setTimeout> | undefined;
  var checkpoint: LpCheckpoint | undefined;
  var seen: LpSeenWindow | undefined;
  var seenReceipts: LpSeenWindow | undefined;
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
      seen = lpCreateSeenWindow(dedupWindow, checkpoint.seen, true);
      seenReceipts = lpCreateSeenWindow(dedupWindow, checkpoint.seenReceipts, false);
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
      retryAfter(lpError('invalid_response', 'Expected a poll response with `messages`, `cursor` and valid `receipts`', true));
      return;
    }
    if (!connected) {
      connected = true;
      lpCallSafely(onStatus, { type: 'connected', cursor: (checkpoint as LpCheckpoint).cursor });
    }
    var fresh = lpUnseen(body.messages, seen as LpSeenWindow);
    var freshReceipts = onReceipts ? lpUnseen(body.receipts, seenReceipts as LpSeenWindow) : [];
    // Not acknowledged when a callback throws, so the gateway redelivers the batch on the retry.
    var failure =
      lpHandOver(fresh, seen as LpSeenWindow, onMessages, 'onMessages', body.cursor) ||
      lpHandOver(freshReceipts, seenReceipts as LpSeenWindow, onReceipts, 'onReceipts', body.cursor);
    if (failure) {
      retryAfter(failure);
      return;
    }
    commit(body.cursor, fresh.length + freshReceipts.length > 0);
    failures = 0;
    if (fresh.length > 0) lpCallSafely(onStatus, { type: 'messages', count: fresh.length, cursor: body.cursor });
    // stop() may have been called from inside onMessages or onStatus.
    if (runGeneration !== generation) return;
    if (body.superseded) {
      var delayMs = lpBackoffDelay(backoff, 1);
      lpCallSafely(onStatus, { type: 'superseded', delayMs: delayMs });
      later(poll, delayMs);
    } else {
      // Receipts fill the page like messages (they hold places in the mailbox sequence).
      later(poll, schedule.pauseAfter(body.messages.length + body.receipts.length, limit));
    }
  }

  function commit(cursor: number, delivered: boolean): void {
    var changed = delivered || cursor !== (checkpoint as LpCheckpoint).cursor;
    checkpoint = { cursor: cursor, seen: (seen as LpSeenWindow).snapshot() };
    var receiptIds = (seenReceipts as LpSeenWindow).snapshot();
    // Left out while empty: checkpoints of pages without receipts keep their old shape.
    if (receiptIds.ids.length > 0) checkpoint.seenReceipts = receiptIds;
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

/** Null unless the body has the documented shape (`receipts` may be missing: none). */
export function lpParsePollBody(text: string): { messages: LpMessage[]; receipts: LpReceipt[]; cursor: number; superseded: boolean } | null {
  var body = lpParseJson(text) as { messages?: unknown; receipts?: unknown; cursor?: unknown; superseded?: unknown } | undefined;
  if (!body || typeof body !== 'object' || !lpIsArray(body.messages) || !lpIsFiniteNumber(body.cursor) || body.cursor < 0) return null;
  var receipts = body.receipts === undefined ? [] : body.receipts;
  if (!lpIsArray(receipts)) return null;
  for (var index = 0; index < body.messages.length; index++) {
    var message = body.messages[index] as LpMessage;
    if (!message || !lpIsFiniteNumber(message.id) || typeof message.from !== 'string') return null;
  }
  for (index = 0; index < receipts.length; index++) {
    var receipt = receipts[index] as LpReceipt;
    if (!receipt || !lpIsFiniteNumber(receipt.id) || typeof receipt.to !== 'string' || receipt.status !== 'acked' || typeof receipt.at !== 'string') return null;
  }
  return { messages: body.messages as LpMessage[], receipts: receipts as LpReceipt[], cursor: body.cursor, superseded: body.superseded === true };
}

/** Items (messages or receipts) not seen before, without repeats inside the batch; keeps the server's order. */
export function lpUnseen<T extends { id: number }>(items: T[], seen: LpSeenWindow): T[] {
  var fresh: T[] = [];
  var inBatch: { [id: string]: boolean } = {};
  for (var index = 0; index < items.length; index++) {
    var item = items[index] as T;
    if (seen.has(item.id) || inBatch[item.id] === true) continue;
    inBatch[item.id] = true;
    fresh.push(item);
  }
  return fresh;
}

/** Calls the application, then records the ids; returns the error to retry with when it threw. */
export function lpHandOver<T extends { id: number }>(
  items: T[],
  seen: LpSeenWindow,
  callback: ((items: T[], context: { cursor: number }) => void) | undefined,
  name: string,
  cursor: number,
): LpError | null {
  if (items.length === 0 || !callback) return null;
  try {
    callback(items, { cursor: cursor });
  } catch (callbackError) {
    return lpError('callback_failed', name + ' threw: ' + String(callbackError), true, callbackError);
  }
  for (var index = 0; index < items.length; index++) seen.add((items[index] as T).id);
  return null;
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
