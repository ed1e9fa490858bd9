/* Where the legacy poller keeps its checkpoint by default. localStorage access is guarded
   everywhere: it is missing on old engines, throws in sandboxed frames, and in some private modes
   every setItem throws; then the checkpoint lives in memory (the page works, without resume). */

import { memoryCursorStore, storageCursorStore, type StorageLike } from '../core/checkpoint.js';
import { ID_ALPHABET } from '../core/random-id.js';
import { invalid, isString } from '../core/validate.js';
import type { LpCursorStore, LpPollerOptions } from './types.js';

/** The global object: `window`, a worker's `self`, or a VM context's global. */
export function globalObject(): { localStorage?: StorageLike & { removeItem?(key: string): void }; LongPoll?: unknown } {
  if (typeof self !== 'undefined') return self as never;
  if (typeof window !== 'undefined') return window as never;
  return Function('return this')();
}

const PROBE_KEY = 'longpoll:probe';

/** localStorage when it can be read and written, otherwise null. */
export function usableStorage(): StorageLike | null {
  try {
    const storage = globalObject().localStorage;
    if (!storage) return null;
    if (typeof storage.removeItem === 'function') {
      storage.setItem(PROBE_KEY, '1');
      storage.removeItem(PROBE_KEY);
    }
    return storage;
  } catch (ignored) {
    return null;
  }
}

/** `LongPoll.localStorageCursorStore(key)`: localStorage when usable, memory otherwise. */
export function localStorageCursorStore(key: string): LpCursorStore {
  const storage = usableStorage();
  return storage ? storageCursorStore(key, storage) : memoryCursorStore();
}

export function chooseStore(options: LpPollerOptions, base: string, token: () => unknown): LpCursorStore {
  const given = options.cursorStore;
  if (given) {
    if (typeof given.load !== 'function' || typeof given.save !== 'function') {
      throw invalid('cursorStore', 'an object with load() and save(checkpoint)', given);
    }
    return given;
  }
  const key = options.storageKey;
  if (key === false) return memoryCursorStore();
  if (key !== undefined && (!isString(key) || !key)) throw invalid('storageKey', 'a non-empty string or false', key);
  const resolved = key || defaultStorageKey(base, token);
  return resolved ? localStorageCursorStore(resolved) : memoryCursorStore();
}

/**
 * One key per gateway URL and user (the token's `sub`), because a cursor sent for the wrong user
 * would acknowledge messages that user never saw. Null when the token cannot be read, which
 * means: keep the checkpoint in memory.
 */
function defaultStorageKey(base: string, token: () => unknown): string | null {
  try {
    const parts = String(token()).split('.');
    const payload = parts.length === 3 ? (JSON.parse(base64UrlDecode(parts[1] as string)) as { sub?: unknown }) : null;
    return payload && isString(payload.sub) ? 'longpoll:' + payload.sub + '@' + base : null;
  } catch (ignored) {
    return null;
  }
}

/**
 * To a binary string (enough for the ASCII claims we read); atob is missing before IE10. Base64url
 * only (ID_ALPHABET), as JWTs are: a token in plain base64 is refused by the gateway anyway.
 */
function base64UrlDecode(text: string): string {
  let output = '';
  let buffer = 0;
  let bits = 0;
  for (let index = 0; index < text.length; index++) {
    const value = ID_ALPHABET.indexOf(text.charAt(index));
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
