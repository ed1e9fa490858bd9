/* Bounded memory of delivered ids (see src/client/seen-ids.ts for the reasoning): the newest
   `capacity` ids exactly, everything at or below the low-water mark counts as seen. Receipt ids
   do not arrive in order (`ascending` false): overflow then only forgets, never infers "seen". */

import type { LpSeenSnapshot } from './types.js';

export interface LpSeenWindow {
  has(id: number): boolean;
  add(id: number): void;
  snapshot(): LpSeenSnapshot;
}

export function lpCreateSeenWindow(capacity: number, snapshot: LpSeenSnapshot | undefined, ascending: boolean): LpSeenWindow {
  var lowWaterMark: number | undefined = snapshot && ascending ? snapshot.lowWaterMark : undefined;
  var ids: number[] = [];

  /** Binary search: first index whose id is >= `id`. */
  function insertionPoint(id: number): number {
    var low = 0;
    var high = ids.length;
    while (low < high) {
      var middle = (low + high) >>> 1;
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
      var forgotten = ids.splice(0, ids.length - capacity);
      if (ascending) lowWaterMark = forgotten[forgotten.length - 1];
    }
  }

  if (snapshot) {
    for (var index = 0; index < snapshot.ids.length; index++) add(snapshot.ids[index] as number);
  }

  return {
    has: has,
    add: add,
    snapshot: function (): LpSeenSnapshot {
      var copy: LpSeenSnapshot = { ids: ids.slice() };
      if (lowWaterMark !== undefined) copy.lowWaterMark = lowWaterMark;
      return copy;
    },
  };
}
