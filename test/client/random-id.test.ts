import { afterEach, describe, expect, it, vi } from 'vitest';
import { newClientMessageId } from '../../src/client/core/publish-request.js';
import { POLLER_CLIENT_ID_PATTERN, randomId } from '../../src/client/core/random-id.js';
import { MADE_UP_CLIENT_ID } from './support/client-id.js';

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

describe('random ids (poller client ids, client message ids)', () => {
  it('draws from crypto.getRandomValues where there is one', () => {
    const getRandomValues = vi.spyOn(globalThis.crypto, 'getRandomValues');
    const random = vi.spyOn(Math, 'random');
    const id = randomId(22);
    expect(id).toMatch(MADE_UP_CLIENT_ID);
    expect(POLLER_CLIENT_ID_PATTERN.test(id)).toBe(true);
    expect(getRandomValues).toHaveBeenCalledTimes(1);
    expect(random).not.toHaveBeenCalled();
  });

  it('falls back to Math.random on engines without crypto', () => {
    vi.stubGlobal('crypto', undefined);
    const random = vi.spyOn(Math, 'random');
    expect(randomId(22)).toMatch(MADE_UP_CLIENT_ID);
    expect(random).toHaveBeenCalledTimes(22);
  });

  it('maps each random byte to one of the 64 characters, all of them reachable', () => {
    vi.spyOn(globalThis.crypto, 'getRandomValues').mockImplementation(<T extends ArrayBufferView | null>(array: T): T => {
      const bytes = array as unknown as Uint8Array;
      // High bits set on purpose: only the low 6 bits choose.
      for (let index = 0; index < bytes.length; index++) bytes[index] = index + 64 * (index % 4);
      return array;
    });
    expect(randomId(64)).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
  });

  it('makes up client message ids that differ from call to call', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newClientMessageId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(MADE_UP_CLIENT_ID);
  });
});
