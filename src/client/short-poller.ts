import { shortPollSchedule } from './core/poller-options.js';
import { createPollLoop, type CommonPollerOptions, type Poller } from './poll-loop.js';
import { POLLING_ONLY } from './transports/options.js';

/**
 * @example
 * const options: ShortPollerOptions = { url, token, intervalMs: 10_000, onMessages: handle };
 */
export interface ShortPollerOptions<Body = unknown> extends CommonPollerOptions<Body> {
  /** Pause between the end of one poll and the start of the next, in milliseconds. Default 5000. */
  intervalMs?: number;
}

/**
 * Receives messages with short polls (`wait=0`, answered at once) every `intervalMs`, for networks
 * or proxies that cut long-held requests. A full page (`limit` messages) is followed by another
 * poll straight away, so a backlog drains without waiting out the interval.
 *
 * @example
 * const poller = createShortPoller({ url, token, intervalMs: 10_000, onMessages: handle });
 * poller.start();
 */
export function createShortPoller<Body = unknown>(options: ShortPollerOptions<Body>): Poller {
  return createPollLoop(options, shortPollSchedule(options), POLLING_ONLY, 'short-poll');
}
