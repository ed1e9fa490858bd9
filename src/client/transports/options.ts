/**
 * The long poller's transport options, checked once: the transports it may use, best first; how
 * long a connection may stay silent before it counts as not working; how often a better transport
 * is tried again; and the WebSocket constructor. Modern build only: the legacy one polls.
 */
import { invalid, isArray, numberOption, optionalFunction } from '../core/validate.js';

/**
 * How a long poller receives: a WebSocket (`GET /v1/ws`), Server-Sent Events (`GET /v1/stream`)
 * or long polls (`GET`/`POST /v1/poll`).
 *
 * @example
 * const transports: PollerTransport[] = ['sse', 'long-poll'];
 */
export type PollerTransport = 'websocket' | 'sse' | 'long-poll';

/**
 * The part of the WHATWG WebSocket the client uses: browsers', Node 22's global one, and the
 * `ws` package's all have it.
 *
 * @example
 * const socket: WebSocketLike = new WebSocket('wss://gateway.example.com/v1/ws?access_token=' + jwt);
 */
export interface WebSocketLike {
  readonly readyState: number;
  // Each runtime types its events its own way: the client reads `data`, `code` and `reason`.
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket constructor, for runtimes without a global one (Node 20: pass the `ws` package's).
 *
 * @example
 * import WebSocket from 'ws';
 * const poller = createLongPoller({ url, token, onMessages, WebSocket });
 */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface TransportOptions {
  transports?: readonly PollerTransport[];
  fallbackAfterMs?: number;
  probeIntervalMs?: number;
  WebSocket?: WebSocketConstructor;
}

export interface ResolvedTransportOptions {
  /** Best first; `websocket` left out where there is no constructor. */
  transports: PollerTransport[];
  fallbackAfterMs: number;
  probeIntervalMs: number;
  WebSocket: WebSocketConstructor | undefined;
}

export const DEFAULT_TRANSPORTS: readonly PollerTransport[] = ['websocket', 'sse', 'long-poll'];

/**
 * Above the gateway's default STREAM_HEARTBEAT_S (15 s) with room for a slow network: an open
 * event stream that hears nothing for this long is dead, and one that never got its first byte
 * is held by a buffering proxy.
 */
export const DEFAULT_FALLBACK_AFTER_MS = 20_000;

/** Engine.IO-like: a poller that fell back tries the better transports again this often. */
export const DEFAULT_PROBE_INTERVAL_MS = 5 * 60_000;

/** The long poller's options as they are checked; the short poller passes none and only polls. */
export function resolveTransportOptions(options: TransportOptions): ResolvedTransportOptions {
  const asked = options.transports;
  const list = asked === undefined ? DEFAULT_TRANSPORTS : asked;
  const valid =
    isArray(list) && list.length > 0 && list.every((transport, index) => DEFAULT_TRANSPORTS.includes(transport) && list.indexOf(transport) === index);
  if (!valid) throw invalid('transports', "a non-empty array of 'websocket', 'sse' and 'long-poll' (each at most once)", asked);
  const WebSocket = optionalFunction('WebSocket', options.WebSocket) ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
  // Where there is no WebSocket (Node 20 without the option) the next transport is the best one.
  const transports = WebSocket ? [...list] : list.filter((transport) => transport !== 'websocket');
  if (transports.length === 0) {
    throw new TypeError("Expected `WebSocket` to be a WebSocket constructor for the 'websocket' transport (no global WebSocket in this environment; pass one in, e.g. the `ws` package's)");
  }
  return {
    transports,
    fallbackAfterMs: numberOption('fallbackAfterMs', options.fallbackAfterMs, DEFAULT_FALLBACK_AFTER_MS, { min: 1 }),
    probeIntervalMs: numberOption('probeIntervalMs', options.probeIntervalMs, DEFAULT_PROBE_INTERVAL_MS, { min: 1 }),
    WebSocket: transports.includes('websocket') ? WebSocket : undefined,
  };
}

/** What the short poller uses: short polls, nothing to fall back to. */
export const POLLING_ONLY: ResolvedTransportOptions = {
  transports: ['long-poll'],
  fallbackAfterMs: DEFAULT_FALLBACK_AFTER_MS,
  probeIntervalMs: DEFAULT_PROBE_INTERVAL_MS,
  WebSocket: undefined,
};
