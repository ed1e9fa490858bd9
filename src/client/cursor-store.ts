import type { SeenIdsSnapshot } from './seen-ids.js';

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
 * Where a poller keeps its checkpoint. `save` is called only after `onMessages` (and `onReceipts`) returned, so a
 * crash inside the application leads to redelivery, never to loss. `load` may also return a bare
 * cursor number (for stores that only ever kept the cursor).
 *
 * @example
 * const fileStore: CursorStore = {
 *   load: async () => JSON.parse(await readFile('inbox.json', 'utf8').catch(() => 'null')) ?? undefined,
 *   save: (checkpoint) => writeFile('inbox.json', JSON.stringify(checkpoint)),
 * };
 */
export interface CursorStore {
  load(): PollCheckpoint | number | undefined | Promise<PollCheckpoint | number | undefined>;
  save(checkpoint: PollCheckpoint): void | Promise<void>;
}

/**
 * Keeps the checkpoint in memory: survives `stop()`/`start()` and can be shared by successive
 * pollers in one process, but not a process restart. The default store.
 *
 * @example
 * const cursorStore = memoryCursorStore();
 * const first = createLongPoller({ url, token, onMessages, cursorStore });
 * // ...later, a new poller resumes where the first one stopped:
 * const second = createLongPoller({ url, token, onMessages, cursorStore });
 */
export function memoryCursorStore(initial?: PollCheckpoint | number): CursorStore {
  let stored: PollCheckpoint | undefined = initial === undefined ? undefined : copyCheckpoint(toCheckpoint(initial, 'initial'));
  return {
    load: () => (stored === undefined ? undefined : copyCheckpoint(stored)),
    save: (checkpoint) => {
      stored = copyCheckpoint(checkpoint);
    },
  };
}

/**
 * The subset of the Web Storage API the store uses.
 *
 * @example
 * const entries = new Map<string, string>();
 * const storage: StorageLike = { getItem: (key) => entries.get(key) ?? null, setItem: (key, value) => void entries.set(key, value) };
 * localStorageCursorStore('inbox:alice', storage);
 */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Persists the checkpoint as JSON under `key` in `localStorage` (or another Web Storage). Use one
 * key per user and gateway: a cursor sent on behalf of the wrong user would acknowledge messages
 * that user never saw. An unreadable entry is treated as "no checkpoint" (start from cursor 0,
 * which only causes redelivery).
 *
 * @example
 * const cursorStore = localStorageCursorStore(`chat:${userId}`);
 * createLongPoller({ url, token, onMessages, cursorStore }).start();
 */
export function localStorageCursorStore(key: string, storage?: StorageLike): CursorStore {
  if (typeof key !== 'string' || key.length === 0) {
    throw new TypeError('Expected `key` to be a non-empty string');
  }
  const resolveStorage = (): StorageLike => {
    const found = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!found) throw new Error('localStorage is not available in this environment');
    return found;
  };
  return {
    load() {
      const raw = resolveStorage().getItem(key);
      if (raw === null) return undefined;
      try {
        return toCheckpoint(JSON.parse(raw) as unknown, key);
      } catch {
        return undefined;
      }
    },
    save(checkpoint) {
      resolveStorage().setItem(key, JSON.stringify(checkpoint));
    },
  };
}

/** Validates what a store returned; throws a TypeError naming the problem. */
export function toCheckpoint(value: unknown, source: string): PollCheckpoint {
  if (typeof value === 'number') {
    return { cursor: requireCursor(value, source), seen: { ids: [] } };
  }
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`Expected checkpoint from ${source} to be an object or a number, got ${value === null ? 'null' : typeof value}`);
  }
  const { cursor, seen, seenReceipts } = value as { cursor?: unknown; seen?: unknown; seenReceipts?: unknown };
  const checkpoint: PollCheckpoint = { cursor: requireCursor(cursor, source), seen: seen === undefined ? { ids: [] } : toSeenIds(seen, 'seen', source) };
  if (seenReceipts !== undefined) checkpoint.seenReceipts = toSeenIds(seenReceipts, 'seenReceipts', source);
  return checkpoint;
}

function toSeenIds(value: unknown, name: string, source: string): SeenIdsSnapshot {
  const { lowWaterMark, ids } = (value ?? {}) as { lowWaterMark?: unknown; ids?: unknown };
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'number' && Number.isFinite(id))) {
    throw new TypeError(`Expected \`${name}.ids\` from ${source} to be an array of numbers`);
  }
  const snapshot: SeenIdsSnapshot = { ids: [...(ids as number[])] };
  if (lowWaterMark !== undefined) {
    if (typeof lowWaterMark !== 'number' || !Number.isFinite(lowWaterMark)) {
      throw new TypeError(`Expected \`${name}.lowWaterMark\` from ${source} to be a number`);
    }
    snapshot.lowWaterMark = lowWaterMark;
  }
  return snapshot;
}

function requireCursor(value: unknown, source: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`Expected \`cursor\` from ${source} to be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

function copyCheckpoint(checkpoint: PollCheckpoint): PollCheckpoint {
  const copy: PollCheckpoint = { cursor: checkpoint.cursor, seen: copySeenIds(checkpoint.seen) };
  if (checkpoint.seenReceipts) copy.seenReceipts = copySeenIds(checkpoint.seenReceipts);
  return copy;
}

function copySeenIds(seen: SeenIdsSnapshot): SeenIdsSnapshot {
  const copy: SeenIdsSnapshot = { ids: [...seen.ids] };
  if (seen.lowWaterMark !== undefined) copy.lowWaterMark = seen.lowWaterMark;
  return copy;
}
