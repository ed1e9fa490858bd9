/* Checkpoint stores. localStorage access is guarded everywhere: it is missing on old engines,
   throws in sandboxed frames and some private modes, and setItem throws when the quota is full. */

import { lpRoot } from './root.js';
import type { LpCheckpoint, LpCursorStore, LpSeenSnapshot } from './types.js';
import { lpDescribe, lpIsArray, lpIsFiniteNumber } from './util.js';

export function lpStorage(): Storage | null {
  try {
    var storage = lpRoot.localStorage;
    return storage ? storage : null;
  } catch (ignored) {
    return null;
  }
}

export function lpMemoryCursorStore(initial?: LpCheckpoint | number): LpCursorStore {
  var stored: string | undefined = initial === undefined ? undefined : JSON.stringify(lpToCheckpoint(initial));
  return {
    load: function () {
      return stored === undefined ? undefined : (JSON.parse(stored) as LpCheckpoint);
    },
    save: function (checkpoint: LpCheckpoint) {
      stored = JSON.stringify(checkpoint);
    },
  };
}

/** Falls back to memory when localStorage is unusable, so a page still works, just without resume. */
export function lpLocalStorageCursorStore(key: string): LpCursorStore {
  if (typeof key !== 'string' || !key) throw new TypeError('Expected `key` to be a non-empty string, got ' + lpDescribe(key));
  var fallback = lpMemoryCursorStore();
  return {
    load: function () {
      var storage = lpStorage();
      var raw: string | null = null;
      try {
        raw = storage ? storage.getItem(key) : null;
      } catch (ignored) {
        return fallback.load();
      }
      if (raw === null) return fallback.load();
      try {
        return lpToCheckpoint(JSON.parse(raw));
      } catch (ignored) {
        // An unreadable entry only means starting from cursor 0, i.e. redelivery, never loss.
        return undefined;
      }
    },
    save: function (checkpoint: LpCheckpoint) {
      fallback.save(checkpoint);
      var storage = lpStorage();
      try {
        if (storage) storage.setItem(key, JSON.stringify(checkpoint));
      } catch (ignored) {
        // Quota or privacy settings: keep working from memory.
      }
    },
  };
}

/** Validates what a store returned; throws a TypeError naming the problem. */
export function lpToCheckpoint(value: unknown): LpCheckpoint {
  var cursor = typeof value === 'number' ? value : value && typeof value === 'object' ? (value as { cursor?: unknown }).cursor : undefined;
  if (!lpIsFiniteNumber(cursor) || cursor < 0 || Math.floor(cursor) !== cursor) {
    throw new TypeError('Expected the stored `cursor` to be a non-negative integer, got ' + lpDescribe(cursor));
  }
  var stored = (typeof value === 'object' && value ? value : {}) as { seen?: unknown; seenReceipts?: unknown };
  var checkpoint: LpCheckpoint = { cursor: cursor, seen: lpToSeenSnapshot(stored.seen) };
  if (stored.seenReceipts) checkpoint.seenReceipts = lpToSeenSnapshot(stored.seenReceipts);
  return checkpoint;
}

/** Keeps what is usable of a stored seen-ids snapshot: at worst a message or receipt repeats. */
export function lpToSeenSnapshot(value: unknown): LpSeenSnapshot {
  var snapshot: LpSeenSnapshot = { ids: [] };
  var seen = value as { ids?: unknown; lowWaterMark?: unknown } | undefined;
  if (seen && typeof seen === 'object') {
    if (lpIsArray(seen.ids)) {
      for (var index = 0; index < seen.ids.length; index++) {
        var id = seen.ids[index];
        if (lpIsFiniteNumber(id)) snapshot.ids.push(id);
      }
    }
    if (lpIsFiniteNumber(seen.lowWaterMark)) snapshot.lowWaterMark = seen.lowWaterMark;
  }
  return snapshot;
}

/**
 * The default localStorage key: one per gateway URL and user (the token's `sub`), because a cursor
 * sent for the wrong user would acknowledge messages that user never saw. Null when the token
 * cannot be read, which means: keep the checkpoint in memory.
 */
export function lpDefaultStorageKey(baseUrl: string, token: string): string | null {
  var subject = lpTokenSubject(token);
  return subject ? 'longpoll:' + subject + '@' + baseUrl : null;
}

export function lpTokenSubject(token: string): string | null {
  if (typeof token !== 'string') return null;
  var parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    var payload = JSON.parse(lpBase64UrlDecode(parts[1] as string)) as { sub?: unknown };
    return payload && typeof payload.sub === 'string' ? payload.sub : null;
  } catch (ignored) {
    return null;
  }
}

export var LP_BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** To a binary string (enough for the ASCII claims we read); atob is missing before IE10. */
export function lpBase64UrlDecode(input: string): string {
  var text = input.replace(/-/g, '+').replace(/_/g, '/');
  var output = '';
  var buffer = 0;
  var bits = 0;
  for (var index = 0; index < text.length; index++) {
    var value = LP_BASE64_ALPHABET.indexOf(text.charAt(index));
    if (value < 0) {
      if (text.charAt(index) === '=') break;
      throw new Error('invalid base64');
    }
    buffer = ((buffer << 6) | value) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      output += String.fromCharCode((buffer >> bits) & 0xff);
    }
  }
  return output;
}
