/**
 * What a stream transport (SSE or WebSocket) hands the poll loop, one item at a time: the
 * connection is open (a first byte arrived: nothing buffers it), a poll answer (an SSE event's
 * data, a WebSocket batch frame: the same JSON a poll answers), or presence events (a WebSocket
 * sends them in frames of their own). The generator returns how the connection ended when the
 * gateway ended it, and throws a ClientError when it failed.
 */
export type StreamFrame = { type: 'open' } | { type: 'answer'; text: string } | { type: 'presence'; events: unknown };

export type StreamEnd =
  /** The gateway ended an SSE stream (STREAM_MAX_S, draining, superseded): reconnect after the `retry:` it asked for. */
  | { reason: 'ended'; reconnectAfterMs: number }
  /** A newer connection of the user took this one's place (WebSocket 1000 `superseded`). */
  | { reason: 'superseded' }
  /** The gateway is draining or closed the connection for another reason: reconnect, maybe elsewhere. */
  | { reason: 'going_away' }
  /** The token expired (WebSocket 4401): reconnect at once with a fresh one. */
  | { reason: 'token_expired' };

export type StreamFrames = AsyncGenerator<StreamFrame, StreamEnd, undefined>;

/** One connection of a stream transport; `send` is there while it can carry client frames. */
export interface StreamConnection {
  frames: StreamFrames;
  send?: (text: string) => boolean;
}

const refusals = new WeakSet<object>();

/**
 * Marks `error` as a refusal: this transport does not work here (an answer other than an event
 * stream, a refused request, silence until `fallbackAfterMs`), so the poller falls back to the
 * next one at once rather than retrying it.
 */
export function refusal<E extends object>(error: E): E {
  refusals.add(error);
  return error;
}

export function isRefusal(error: unknown): boolean {
  return typeof error === 'object' && error !== null && refusals.has(error);
}
