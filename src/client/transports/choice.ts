/**
 * Which transport the long poller connects with, as Engine.IO chooses: the first of its list that
 * works, remembered for the poller's life. It falls back to the next one at once when a transport
 * that has not worked yet fails, or refuses (an answer that is no stream, silence until
 * `fallbackAfterMs`: a buffering proxy), and after FAILURES_BEFORE_FALLBACK failures in a row of
 * one that did work. Below the first, it tries the first again every `probeIntervalMs`: from there
 * the same rules bring it down again if that still does not work.
 */
import { ClientHttpError } from '../errors.js';
import { isRefusal } from './frames.js';
import type { PollerTransport, ResolvedTransportOptions } from './options.js';

/** Enough to ride out a gateway restart (a rolling deploy) without leaving a transport that works. */
export const FAILURES_BEFORE_FALLBACK = 3;

export interface TransportChoice {
  /**
   * The transport of the next connection (the first again when a probe is due); `switched` when
   * it is not the one of the last connection.
   */
  next(): { transport: PollerTransport; switched: boolean };
  /** True while a probe waits for the connection in use to end. */
  readonly probeDue: boolean;
  /** The connection in use works (opened, or answered). */
  worked(): void;
  /** The connection in use failed with `error`: true when the next connection falls back, at once. */
  fallBackAfter(error: unknown): boolean;
  /** The failure of the connection in use is retried after a delay: counts towards falling back. */
  failed(): void;
  /** The poller stopped: no probe until it runs again. */
  pause(): void;
}

/** `onProbe` is called when a probe falls due, to end the connection in use between two answers. */
export function createTransportChoice(options: ResolvedTransportOptions, onProbe: () => void): TransportChoice {
  const transports = options.transports;
  const last = transports.length - 1;
  let current = 0;
  let connected = -1;
  /** Transports that worked since the poller last fell back from them. */
  const working = new Set<number>();
  let failures = 0;
  let probeDue = false;
  let probeTimer: ReturnType<typeof setTimeout> | undefined;

  function fallBack(): void {
    working.delete(current);
    current += 1;
    failures = 0;
  }

  return {
    next() {
      if (probeDue) {
        probeDue = false;
        current = 0;
        failures = 0;
      }
      if (current > 0 && probeTimer === undefined) {
        probeTimer = setTimeout(() => {
          probeTimer = undefined;
          probeDue = true;
          onProbe();
        }, options.probeIntervalMs);
      }
      const switched = current !== connected;
      connected = current;
      return { transport: transports[current] as PollerTransport, switched };
    },
    get probeDue() {
      return probeDue;
    },
    worked() {
      working.add(current);
      failures = 0;
    },
    fallBackAfter(error) {
      if (current === last) return false;
      // Refused alike by every transport: the last one's answer ends the poller.
      if (error instanceof ClientHttpError && error.status === 401) return false;
      if (!isRefusal(error) && working.has(current)) return false;
      fallBack();
      return true;
    },
    failed() {
      failures += 1;
      if (failures >= FAILURES_BEFORE_FALLBACK && current < last) fallBack();
    },
    pause() {
      clearTimeout(probeTimer);
      probeTimer = undefined;
      probeDue = false;
    },
  };
}
