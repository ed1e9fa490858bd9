import type { SeenIdsSnapshot } from './seen-ids.js';
import { isArray, isFiniteNumber, isWholeNumber, typeName } from './validate.js';

/**
 * Everything a poller needs to resume exactly where it stopped: the cursor to send back (which
 * acknowledges what was delivered) and the recently delivered ids, so that a redelivery after a
 * restart is still recognised as a duplicate.
 *
 * @example
 * const checkpoint: PollCheckpoint = { cursor: 120, seen: { lowWaterMark: 20, ids: [118, 119, 120] } };
 */
export interface PollCheckpoint {
  cursor: number;
  seen: SeenIdsSnapshot;
  /** Ids of the receipts handed to `onReceipts` lately; absent until the first one. */
  seenReceipts?: SeenIdsSnapshot;
}

/**
 * The subset of the Web Storage API the storage cursor store uses.
 *
 * @example
 * const entries = new Map<string, string>();
 * const storage: StorageLike = { getItem: (key) => entries.get(key) ?? null, setItem: (key, value) => void entries.set(key, value) };
 */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** A cursor store whose methods answer at once (what both built-in stores are). */
export interface SyncCursorStore {
  load(): PollCheckpoint | undefined;
  save(checkpoint: PollCheckpoint): void;
}

/**
 * Validates what a cursor store returned, strictly: a wrong cursor or a wrong seen-id list throws a
 * TypeError naming the field, because resuming from half a checkpoint would hide a broken store.
 * A bare number is a cursor (for stores that only ever kept the cursor).
 */
export function toCheckpoint(value: unknown, source: string): PollCheckpoint {
  if (typeof value === 'number') return { cursor: requireCursor(value, source), seen: { ids: [] } };
  if (typeof value !== 'object' || value === null) {
    throw new TypeError('Expected checkpoint from ' + source + ' to be an object or a number, got ' + typeName(value));
  }
  const stored = value as { cursor?: unknown; seen?: unknown; seenReceipts?: unknown };
  const checkpoint: PollCheckpoint = {
    cursor: requireCursor(stored.cursor, source),
    seen: stored.seen === undefined ? { ids: [] } : toSeenIds(stored.seen, 'seen', source),
  };
  if (stored.seenReceipts !== undefined) checkpoint.seenReceipts = toSeenIds(stored.seenReceipts, 'seenReceipts', source);
  return checkpoint;
}

function toSeenIds(value: unknown, name: string, source: string): SeenIdsSnapshot {
  const seen = (value || {}) as { lowWaterMark?: unknown; ids?: unknown };
  const ids = seen.ids;
  let valid = isArray(ids);
  for (let index = 0; valid && index < (ids as unknown[]).length; index++) valid = isFiniteNumber((ids as unknown[])[index]);
  if (!valid) throw new TypeError('Expected `' + name + '.ids` from ' + source + ' to be an array of numbers');
  const snapshot: SeenIdsSnapshot = { ids: (ids as number[]).slice() };
  if (seen.lowWaterMark !== undefined) {
    if (!isFiniteNumber(seen.lowWaterMark)) throw new TypeError('Expected `' + name + '.lowWaterMark` from ' + source + ' to be a number');
    snapshot.lowWaterMark = seen.lowWaterMark;
  }
  return snapshot;
}

function requireCursor(value: unknown, source: string): number {
  if (!isWholeNumber(value) || value < 0 || value > 9007199254740991) {
    throw new TypeError('Expected `cursor` from ' + source + ' to be a non-negative integer, got ' + typeName(value));
  }
  return value;
}

/** A copy that shares no arrays with `checkpoint` (which is already valid). */
export function copyCheckpoint(checkpoint: PollCheckpoint): PollCheckpoint {
  return JSON.parse(JSON.stringify(checkpoint)) as PollCheckpoint;
}

/**
 * Keeps the checkpoint in memory: survives `stop()`/`start()` and can be shared by successive
 * pollers in one process or page, but not a restart. The default store.
 *
 * @example
 * const cursorStore = memoryCursorStore();
 * const first = createLongPoller({ url, token, onMessages, cursorStore });
 * // ...later, a new poller resumes where the first one stopped:
 * const second = createLongPoller({ url, token, onMessages, cursorStore });
 */
export function memoryCursorStore(initial?: PollCheckpoint | number): SyncCursorStore {
  let stored: PollCheckpoint | undefined = initial === undefined ? undefined : toCheckpoint(initial, 'initial');
  return {
    load: function () {
      return stored === undefined ? undefined : copyCheckpoint(stored);
    },
    save: function (checkpoint: PollCheckpoint) {
      stored = copyCheckpoint(checkpoint);
    },
  };
}

/**
 * Persists the checkpoint as JSON under `key` in a Web Storage. An unreadable or invalid entry
 * counts as "no checkpoint" (start from cursor 0, which only causes redelivery, never loss); a
 * failing `setItem` (quota) throws, so the poller reports it and saves again after its next poll.
 */
export function storageCursorStore(key: string, storage: StorageLike | (() => StorageLike)): SyncCursorStore {
  // A function is asked at each use, so a store made before the storage exists still works.
  const resolve = typeof storage === 'function' ? storage : () => storage;
  if (typeof key !== 'string' || key.length === 0) throw new TypeError('Expected `key` to be a non-empty string, got ' + typeName(key));
  return {
    load: function () {
      const raw = resolve().getItem(key);
      if (raw === null) return undefined;
      try {
        return toCheckpoint(JSON.parse(raw), key);
      } catch (ignored) {
        return undefined;
      }
    },
    save: function (checkpoint: PollCheckpoint) {
      resolve().setItem(key, JSON.stringify(checkpoint));
    },
  };
}
