/**
 * `GET /v1/ws` through a WHATWG WebSocket: its events queued and handed to the poll loop one at
 * a time, as StreamFrames. A browser's WebSocket says nothing about a refused upgrade (no status,
 * no body): it closes before it opened, which is all this can report.
 */
import { networkFailure, protocolFailure, timeoutFailure } from '../core/failures.js';
import { makeClientError } from '../errors.js';
import { refusal, type StreamConnection, type StreamEnd, type StreamFrame, type StreamFrames } from './frames.js';
import type { WebSocketConstructor, WebSocketLike } from './options.js';

export interface WebSocketRequest {
  /** The `ws:` / `wss:` URL, token and query included. */
  url: URL;
  /** Aborting it closes the socket: reading throws its reason. */
  signal: AbortSignal;
  /** A socket not open by then is held somewhere (a refusal: fall back). */
  openWithinMs: number;
}

const OPEN = 1;

/** Close codes of the gateway (src/http/routes/websocket.ts). */
const CLOSE_NORMAL = 1000;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TOKEN_EXPIRED = 4401;
/** A frame of ours was refused (not JSON, malformed, too big): a bug, retried like a bad answer. */
const CLOSE_REFUSED_FRAME = [1003, 1008, 1009];

const closedBeforeOpen = new WeakSet<object>();

/** True for the failure of a WebSocket that closed before it opened: refused, or never reached. */
export function isClosedBeforeOpen(error: unknown): boolean {
  return typeof error === 'object' && error !== null && closedBeforeOpen.has(error);
}

export function openWebSocket(WebSocket: WebSocketConstructor, request: WebSocketRequest): StreamConnection {
  const { signal } = request;
  const path = request.url.pathname;
  const queue: StreamFrame[] = [];
  let outcome: { end: StreamEnd } | { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  let opened = false;
  let socket: WebSocketLike | undefined;

  const settle = (how: { end: StreamEnd } | { error: unknown }) => {
    outcome ??= how;
    wake?.();
  };
  const close = () => {
    clearTimeout(openTimer);
    signal.removeEventListener('abort', onAbort);
    if (socket && socket.readyState <= OPEN) socket.close(CLOSE_NORMAL);
  };
  const onAbort = () => {
    settle({ error: signal.reason });
    close();
  };
  const openTimer = setTimeout(() => {
    settle({ error: refusal(makeClientError({ ...timeoutFailure(request.openWithinMs), message: `The WebSocket did not open within ${request.openWithinMs} ms` })) });
    close();
  }, request.openWithinMs);

  if (signal.aborted) onAbort();
  else {
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      socket = new WebSocket(request.url.href);
    } catch (error) {
      // A URL the constructor refuses, or a page whose Content-Security-Policy forbids it.
      settle({ error: refusal(makeClientError(networkFailure('WebSocket ' + path, error))) });
      close();
    }
  }
  if (socket) {
    socket.onopen = () => {
      opened = true;
      clearTimeout(openTimer);
      queue.push({ type: 'open' });
      wake?.();
    };
    socket.onmessage = (event: { data: unknown }) => {
      const frame = readFrame(event.data);
      if ('error' in frame) {
        settle(frame);
        close();
      } else if (frame.frame) {
        queue.push(frame.frame);
        wake?.();
      }
    };
    // The close event that follows says how it ended.
    socket.onerror = () => {};
    socket.onclose = (event: { code: number; reason: string }) => {
      close();
      settle(closed(event.code, event.reason, opened, path));
    };
  }

  async function* frames(): StreamFrames {
    try {
      for (;;) {
        // Frames that arrived before a stop or a change of topics are not handed over.
        if (signal.aborted) throw signal.reason;
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (outcome) {
          if ('error' in outcome) throw outcome.error;
          return outcome.end;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      close();
    }
  }

  return {
    frames: frames(),
    send(text) {
      if (!socket || socket.readyState !== OPEN) return false;
      socket.send(text);
      return true;
    },
  };
}

function readFrame(data: unknown): { frame: StreamFrame | undefined } | { error: unknown } {
  const bad = (message: string) => ({ error: makeClientError(protocolFailure(message)) });
  if (typeof data !== 'string') return bad('Expected text frames from the WebSocket');
  let parsed: { type?: unknown; events?: unknown };
  try {
    parsed = JSON.parse(data);
  } catch {
    return bad('Expected JSON frames from the WebSocket, got ' + JSON.stringify(data.slice(0, 60)));
  }
  if (parsed === null || typeof parsed !== 'object') return bad('Expected each WebSocket frame to be a JSON object');
  if (parsed.type === 'batch') return { frame: { type: 'answer', text: data } };
  if (parsed.type === 'presence') return { frame: { type: 'presence', events: parsed.events } };
  // A frame type of a newer gateway: nothing this client has to act on.
  return { frame: undefined };
}

function closed(code: number, reason: string, opened: boolean, path: string): { end: StreamEnd } | { error: unknown } {
  if (!opened) {
    const error = makeClientError(networkFailure('WebSocket ' + path, `closed before it opened (code ${code})`));
    closedBeforeOpen.add(error);
    return { error };
  }
  if (code === CLOSE_TOKEN_EXPIRED) return { end: { reason: 'token_expired' } };
  if (code === CLOSE_NORMAL && reason === 'superseded') return { end: { reason: 'superseded' } };
  if (code === CLOSE_NORMAL || code === CLOSE_GOING_AWAY) return { end: { reason: 'going_away' } };
  if (CLOSE_REFUSED_FRAME.includes(code)) return { error: makeClientError(protocolFailure(`The gateway closed the WebSocket with ${code} ${reason}`)) };
  return { error: makeClientError(networkFailure('WebSocket ' + path, `closed with code ${code}${reason ? ' ' + reason : ''}`)) };
}
