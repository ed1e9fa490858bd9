export type { PollMessage, PollResponse, DeliveryReceipt, TopicReset, PresenceEvent } from './core/types.js';

/**
 * The subset of `fetch` the client uses, so tests and other runtimes can inject their own.
 *
 * @example
 * const loggingFetch: FetchLike = (url, init) => { console.debug(init.method, url); return fetch(url, init); };
 */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;
