import { memoryCursorStore, storageCursorStore, type PollCheckpoint, type StorageLike } from './core/checkpoint.js';

export { memoryCursorStore, type PollCheckpoint, type StorageLike };

/**
 * Where a poller keeps its checkpoint. `save` is called only after `onMessages` (and `onReceipts`) returned, so a
 * crash inside the application leads to redelivery, never to loss. `load` may also return a bare
 * cursor number (for stores that only ever kept the cursor). What `load` returns is checked
 * strictly: a wrong cursor or seen-id list stops the poller with `cursor_store_failed`.
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
 * Persists the checkpoint as JSON under `key` in `localStorage` (or another Web Storage). Use one
 * key per user and gateway: a cursor sent on behalf of the wrong user would acknowledge messages
 * that user never saw. An unreadable entry is treated as "no checkpoint" (start from cursor 0,
 * which only causes redelivery); a failing `setItem` is reported and retried after the next poll.
 *
 * @example
 * const cursorStore = localStorageCursorStore(`chat:${userId}`);
 * createLongPoller({ url, token, onMessages, cursorStore }).start();
 */
export function localStorageCursorStore(key: string, storage?: StorageLike): CursorStore {
  return storageCursorStore(key, () => {
    const found = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!found) throw new Error('localStorage is not available in this environment');
    return found;
  });
}
