/**
 * Remembers which message ids were already handed to the application, in bounded memory.
 *
 * The most recent `capacity` ids are kept exactly. When the window overflows, the smallest ids are
 * forgotten and the low-water mark rises to the largest forgotten id: anything at or below it
 * counts as seen. That is safe because the gateway delivers a user's messages in id order, so an id
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

export class SeenIdWindow {
  readonly #capacity: number;
  readonly #ascending: boolean;
  #lowWaterMark: number | undefined;
  /** Ascending; appends are the common case because ids mostly arrive in order. */
  #ids: number[];

  /**
   * `ascending: false` is for ids that do not arrive in order, such as receipts (they come in the
   * order the recipients ack, and a recipient may come back after a week). Then overflow only
   * forgets the smallest ids and never infers "seen" from a low-water mark: a forgotten id that
   * repeats passes again (at-least-once), but a late id that was never seen is never dropped.
   */
  constructor(capacity: number = DEFAULT_SEEN_ID_CAPACITY, snapshot?: SeenIdsSnapshot, options: { ascending?: boolean } = {}) {
    this.#capacity = capacity;
    this.#ascending = options.ascending ?? true;
    this.#lowWaterMark = this.#ascending ? snapshot?.lowWaterMark : undefined;
    this.#ids = [...new Set(snapshot?.ids ?? [])]
      .filter((id) => this.#lowWaterMark === undefined || id > this.#lowWaterMark)
      .sort((a, b) => a - b);
    this.#trim();
  }

  has(id: number): boolean {
    if (this.#lowWaterMark !== undefined && id <= this.#lowWaterMark) return true;
    return this.#indexOf(id) >= 0;
  }

  add(id: number): void {
    if (this.has(id)) return;
    const ids = this.#ids;
    if (ids.length === 0 || id > ids[ids.length - 1]!) {
      ids.push(id);
    } else {
      ids.splice(this.#insertionPoint(id), 0, id);
    }
    this.#trim();
  }

  snapshot(): SeenIdsSnapshot {
    return this.#lowWaterMark === undefined ? { ids: [...this.#ids] } : { lowWaterMark: this.#lowWaterMark, ids: [...this.#ids] };
  }

  #trim(): void {
    const overflow = this.#ids.length - this.#capacity;
    if (overflow > 0) {
      const forgotten = this.#ids.splice(0, overflow);
      if (this.#ascending) this.#lowWaterMark = forgotten[forgotten.length - 1];
    }
  }

  #indexOf(id: number): number {
    const index = this.#insertionPoint(id);
    return this.#ids[index] === id ? index : -1;
  }

  /** Binary search: first index whose id is >= `id`. */
  #insertionPoint(id: number): number {
    let low = 0;
    let high = this.#ids.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#ids[middle]! < id) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
