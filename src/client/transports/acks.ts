/**
 * Acks for the stream transports. A poll acks by sending its cursor; a stream acks nothing by
 * reading, so once the application took an answer and the checkpoint was saved, the poller acks
 * its cursor: a frame while a WebSocket is open, else `POST /v1/ack`. Until then the gateway
 * keeps the messages pending (a stream lost with them in flight delivers them again) and their
 * senders get no receipts.
 */

/** Acks are cumulative, so one per this interval carries all: a burst of answers costs one request. */
export const ACK_INTERVAL_MS = 100;

export interface StreamAcks {
  /** Acks through `cursor` (at once, or with the next ack ACK_INTERVAL_MS after the last one). */
  ack(cursor: number): void;
  /** Sends acks through `send` (an open WebSocket's frames) until replaced; undefined: POST them. */
  sendFrames(send: ((cursor: number) => boolean) | undefined): void;
  /**
   * A connection opened: `cursor` is acked again unless a POST confirmed it, for a frame may have
   * been lost with its socket, and a run may have stopped with an ack unsent.
   */
  opened(cursor: number | undefined): void;
  /** A run starts: failed POSTs are retried again. */
  resume(): void;
  /** A run ended: what is owed is sent at once, and a POST that fails is not retried until resume(). */
  pause(): void;
}

export interface StreamAckOptions {
  /** POST /v1/ack; rejects when the gateway did not take it. */
  post(cursor: number): Promise<void>;
  /** How long to wait before POST number `attempt + 1` after `error`. */
  retryDelayMs(attempt: number, error: unknown): number;
}

export function createStreamAcks(options: StreamAckOptions): StreamAcks {
  /** The highest cursor acked by a POST the gateway answered (0 acks nothing). */
  let confirmed = 0;
  /** The highest cursor sent as a frame on the socket open now. */
  let framed = 0;
  /** The cursor to ack next, when higher than what was sent. */
  let owed: number | undefined;
  let lastSentAt = -Infinity;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let posting = false;
  let failures = 0;
  let paused = true;
  let sendFrame: ((cursor: number) => boolean) | undefined;

  function schedule(delayMs = lastSentAt + ACK_INTERVAL_MS - Date.now()): void {
    if (timer !== undefined || posting || owed === undefined) return;
    if (delayMs <= 0) send();
    else timer = setTimeout(send, delayMs);
  }

  function send(): void {
    timer = undefined;
    const cursor = owed;
    if (cursor === undefined) return;
    owed = undefined;
    lastSentAt = Date.now();
    if (sendFrame?.(cursor)) {
      framed = Math.max(framed, cursor);
      return;
    }
    posting = true;
    options.post(cursor).then(
      () => {
        posting = false;
        failures = 0;
        confirmed = Math.max(confirmed, cursor);
        schedule();
      },
      (error: unknown) => {
        posting = false;
        failures += 1;
        if (owed === undefined || owed < cursor) owed = cursor;
        if (!paused) schedule(options.retryDelayMs(failures, error));
      },
    );
  }

  function ack(cursor: number): void {
    if (cursor <= confirmed || cursor <= framed || (owed !== undefined && cursor <= owed)) return;
    owed = cursor;
    schedule();
  }

  return {
    ack,
    sendFrames(send) {
      sendFrame = send;
      framed = 0;
    },
    opened(cursor) {
      if (cursor !== undefined) ack(cursor);
    },
    resume() {
      paused = false;
    },
    pause() {
      paused = true;
      clearTimeout(timer);
      timer = undefined;
      if (!posting) send();
    },
  };
}
