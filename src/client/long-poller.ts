import { longPollSchedule } from './core/poller-options.js';
import { createPollLoop, type CommonPollerOptions, type Poller } from './poll-loop.js';
import { resolveTransportOptions, type PollerTransport, type WebSocketConstructor } from './transports/options.js';

/**
 * @example
 * const options: LongPollerOptions = { url, token, wait: 20, transports: ['sse', 'long-poll'], onMessages: handle };
 */
export interface LongPollerOptions<Body = unknown> extends CommonPollerOptions<Body> {
  /**
   * Seconds the server may hold each poll open while nothing is pending. Default 25. Lowered
   * automatically to the server's `X-Poll-Wait-Max` when that is smaller.
   */
  wait?: number;
  /**
   * How to receive, best first. Default `['websocket', 'sse', 'long-poll']`: the first that works
   * is used and remembered for the poller's life. `websocket` is skipped where there is no
   * WebSocket constructor (no `WebSocket` option, no global one). Whatever the transport, the
   * callbacks, the checkpoint and the statuses are the same; streams are acked by the poller once
   * the callbacks returned and the checkpoint was saved (at most one ack per 100 ms).
   */
  transports?: readonly PollerTransport[];
  /**
   * A transport that got no byte within this many milliseconds of connecting (a buffering proxy,
   * a WebSocket that never opens) is left for the next one; it is also the longest silence an
   * open event stream may keep (the gateway's heartbeat comes every STREAM_HEARTBEAT_S, 15 s)
   * before it counts as dead and is reconnected. Default 20000.
   */
  fallbackAfterMs?: number;
  /**
   * After falling back, how often to try the better transports again, in milliseconds (the
   * connection in use is left between two answers, and taken up again if the better one still
   * fails). Default 300000 (5 minutes).
   */
  probeIntervalMs?: number;
  /**
   * The WebSocket constructor. Default `globalThis.WebSocket` (browsers, Node 22+); in Node 20
   * pass the `ws` package's to use the `websocket` transport.
   */
  WebSocket?: WebSocketConstructor;
}

/**
 * Receives messages as they arrive: over a WebSocket or Server-Sent Events where they work, else
 * with long polls, each held open by the gateway until a message arrives or `wait` seconds pass.
 *
 * @example
 * const poller = createLongPoller({
 *   url: 'https://gateway.example.com/',
 *   token: jwt,
 *   cursorStore: localStorageCursorStore(`inbox:${userId}`),
 *   onMessages: (messages) => messages.forEach((m) => render(m.from, m.body)),
 *   onStatus: (status) => status.type === 'stopped' && status.error && showLogin(status.error.code),
 * });
 * poller.start();
 * // later: await poller.stop();
 */
export function createLongPoller<Body = unknown>(options: LongPollerOptions<Body>): Poller {
  return createPollLoop(options, longPollSchedule(options), resolveTransportOptions(options ?? {}));
}
