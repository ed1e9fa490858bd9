import { POLLER_CLIENT_ID_PATTERN } from './random-id.js';
import type { SeenIdsSnapshot } from './seen-ids.js';
import { eachTopic, isPosition, type TopicPositions } from './topics.js';
import { invalid, isArrayOf, isFiniteNumber, isObject, requireMatch, requireNonEmptyString } from './validate.js';

/**
 * Everything a poller needs to resume exactly where it stopped: the cursor to send back (which
 * acknowledges what was delivered), the recently delivered ids, so that a redelivery after a
 * restart is still recognised as a duplicate, the position in each topic it reads, and the client
 * id it polls under (so the gateway's presence counts a restarted poller as the same client).
 *
 * @example
 * const checkpoint: PollCheckpoint = { cursor: 120, clientId: 'q3Zx_7Lw0bTQ-9sVfKc2Ye', seen: { lowWaterMark: 20, ids: [118, 119, 120] }, topics: { 'room:1': 42 } };
 */
export interface PollCheckpoint {
  cursor: number;
  /**
   * The `client` sent with every poll (`[A-Za-z0-9_-]{1,64}`). Absent in checkpoints from before
   * presence: the poller then makes one up and saves it after its first poll.
   */
  clientId?: string;
  seen: SeenIdsSnapshot;
  /** Ids of the receipts handed to `onReceipts` lately; absent until the first one. */
  seenReceipts?: SeenIdsSnapshot;
  /** The position in each topic read; absent until one is known (and in checkpoints from before topics). */
  topics?: TopicPositions;
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
 * Validates what a cursor store returned, strictly: a wrong cursor, client id, seen-id list or
 * topic position throws a TypeError naming the field, because resuming from half a checkpoint would
 * hide a broken store. A bare number is a cursor (for stores that only ever kept the cursor); a
 * checkpoint without `topics` (written before topics existed) is one that reads none yet, one
 * without `clientId` (written before presence) one whose poller has no id yet.
 */
export function toCheckpoint(value: unknown): PollCheckpoint {
  if (typeof value === 'number') value = { cursor: value };
  if (!isObject(value)) throw invalid('checkpoint', 'an object or a number', value);
  const stored = value as { cursor?: unknown; clientId?: unknown; seen?: unknown; seenReceipts?: unknown; topics?: unknown };
  const checkpoint: PollCheckpoint = {
    cursor: requireCursor(stored.cursor),
    seen: stored.seen === undefined ? { ids: [] } : toSeenIds(stored.seen, 'seen'),
  };
  if (stored.clientId !== undefined) checkpoint.clientId = requireMatch('clientId', stored.clientId, POLLER_CLIENT_ID_PATTERN, 'a client id');
  if (stored.seenReceipts !== undefined) checkpoint.seenReceipts = toSeenIds(stored.seenReceipts, 'seenReceipts');
  if (stored.topics !== undefined) checkpoint.topics = toTopicPositions(stored.topics);
  return checkpoint;
}

/** A copy of the stored positions, each topic name and position checked. */
function toTopicPositions(value: unknown): TopicPositions {
  eachTopic('topics', value, false, function () {});
  // JSON keeps a topic named `__proto__` as an own property, where assigning it would not.
  return JSON.parse(JSON.stringify(value));
}

function toSeenIds(value: unknown, name: string): SeenIdsSnapshot {
  const seen = (value || {}) as { lowWaterMark?: unknown; ids?: unknown };
  const ids = seen.ids;
  if (!isArrayOf(ids, isFiniteNumber)) throw invalid(name + '.ids', 'an array of numbers', ids);
  const snapshot: SeenIdsSnapshot = { ids: (ids as number[]).slice() };
  if (seen.lowWaterMark !== undefined) {
    if (!isFiniteNumber(seen.lowWaterMark)) throw invalid(name + '.lowWaterMark', 'a number', seen.lowWaterMark);
    snapshot.lowWaterMark = seen.lowWaterMark;
  }
  return snapshot;
}

function requireCursor(value: unknown): number {
  if (!isPosition(value)) throw invalid('cursor', 'a non-negative integer', value);
  return value;
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
  let stored: PollCheckpoint | undefined = initial === undefined ? undefined : toCheckpoint(initial);
  return {
    // A copy goes out (toCheckpoint copies the id lists), so nobody holding it can change what is stored.
    load: function () {
      return stored === undefined ? undefined : toCheckpoint(stored);
    },
    // Kept as given, not copied: it is saved after every poll, and a poller never changes a
    // checkpoint once it has handed it over (each save gets a new one).
    save: function (checkpoint: PollCheckpoint) {
      stored = checkpoint;
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
  requireNonEmptyString('key', key);
  return {
    load: function () {
      const raw = resolve().getItem(key);
      if (raw === null) return undefined;
      try {
        return toCheckpoint(JSON.parse(raw));
      } catch (ignored) {
        return undefined;
      }
    },
    save: function (checkpoint: PollCheckpoint) {
      resolve().setItem(key, JSON.stringify(checkpoint));
    },
  };
}
