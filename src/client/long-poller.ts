import { longPollSchedule } from './core/poller-options.js';
import { createPollLoop, type CommonPollerOptions, type Poller } from './poll-loop.js';

/**
 * @example
 * const options: LongPollerOptions = { url, token, wait: 20, onMessages: handle };
 */
export interface LongPollerOptions<Body = unknown> extends CommonPollerOptions<Body> {
  /**
   * Seconds the server may hold each poll open while nothing is pending. Default 25. Lowered
   * automatically to the server's `X-Poll-Wait-Max` when that is smaller.
   */
  wait?: number;
}

/**
 * Receives messages with long polls: each request is held open by the gateway until a message
 * arrives or `wait` seconds pass, then the next one is sent at once with the new cursor.
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
  return createPollLoop(options, longPollSchedule(options));
}
