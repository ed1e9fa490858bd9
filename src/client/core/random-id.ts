/**
 * Random ids for both builds: the `client` id a poller sends with every poll (one poller instance,
 * for presence) and the client message ids publish makes up. ES5: the legacy bundle runs this code.
 */

/** Base64url's 64 characters: an id drawn from them needs no escaping in a URL, a JSON string or a storage key. */
export const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** What a poll's `client` may be (the gateway refuses anything else). */
export const POLLER_CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `length` characters of ID_ALPHABET, from `crypto.getRandomValues` where there is one (current
 * browsers, Node), from Math.random on older engines (IE11 has only `msCrypto`): ids that must only differ
 * from each other, not stay secret. A byte's low 6 bits are uniform over the 64 characters.
 *
 * @example
 * randomId(22); // "q3Zx_7Lw0bTQ-9sVfKc2Ye" (132 random bits)
 */
export function randomId(length: number): string {
  const source = typeof crypto !== 'undefined' && crypto;
  const bytes = source && source.getRandomValues && source.getRandomValues(new Uint8Array(length));
  let id = '';
  for (let index = 0; index < length; index++) id += ID_ALPHABET.charAt((bytes ? (bytes[index] as number) : Math.random() * 64) & 63);
  return id;
}
