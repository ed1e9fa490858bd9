/**
 * Remembers which ids were already handed to the application, in bounded memory.
 *
 * The most recent `capacity` ids are kept exactly. When the window overflows, the smallest ids are
 * forgotten and the low-water mark rises to the largest forgotten id: anything at or below it
 * counts as seen. That is safe because the gateway delivers a user's messages in order, so an id
 * that many newer ids have already overtaken can only be a redelivery.
 *
 * @example
 * const snapshot: SeenIdsSnapshot = { lowWaterMark: 20, ids: [118, 119, 120] };
 */
export interface SeenIdsSnapshot {
  /** Ids at or below this count as seen; absent while nothing has been forgotten yet. */
  lowWaterMark?: number;
  /** Seen ids above the low-water mark, ascending. */
  ids: number[];
}

export const DEFAULT_SEEN_ID_CAPACITY = 1000;

export interface SeenIdWindow {
  has(id: number): boolean;
  add(id: number): void;
  snapshot(): SeenIdsSnapshot;
}

/**
 * `ascending: false` is for ids that do not arrive in order, such as receipts (they come in the
 * order the recipients ack, and a recipient may come back after a week). Then overflow only
 * forgets the smallest ids and never infers "seen" from a low-water mark: a forgotten id that
 * repeats passes again (at-least-once), but a late id that was never seen is never dropped.
 */
export function createSeenIdWindow(capacity: number, snapshot?: SeenIdsSnapshot, ascending?: boolean): SeenIdWindow {
  const inOrder = ascending !== false;
  let lowWaterMark: number | undefined = snapshot && inOrder ? snapshot.lowWaterMark : undefined;
  /** Ascending; appends are the common case because ids mostly arrive in order. */
  const ids: number[] = [];

  /** Binary search: first index whose id is >= `id`. */
  function insertionPoint(id: number): number {
    let low = 0;
    let high = ids.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((ids[middle] as number) < id) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  function has(id: number): boolean {
    if (lowWaterMark !== undefined && id <= lowWaterMark) return true;
    return ids[insertionPoint(id)] === id;
  }

  function add(id: number): void {
    if (has(id)) return;
    if (ids.length === 0 || id > (ids[ids.length - 1] as number)) ids.push(id);
    else ids.splice(insertionPoint(id), 0, id);
    if (ids.length > capacity) {
      const forgotten = ids.splice(0, ids.length - capacity);
      if (inOrder) lowWaterMark = forgotten[forgotten.length - 1];
    }
  }

  if (snapshot) for (let index = 0; index < snapshot.ids.length; index++) add(snapshot.ids[index] as number);

  return {
    has: has,
    add: add,
    snapshot: function () {
      const copy: SeenIdsSnapshot = { ids: ids.slice() };
      if (lowWaterMark !== undefined) copy.lowWaterMark = lowWaterMark;
      return copy;
    },
  };
}
