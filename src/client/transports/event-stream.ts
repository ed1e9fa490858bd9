/**
 * Server-Sent Events read with fetch rather than EventSource: EventSource can send no
 * Authorization header, and it tells a refusal (its status and error code) apart from a network
 * failure no better than by reconnecting forever.
 */
import { httpFailure, networkFailure, protocolFailure, timeoutFailure } from '../core/failures.js';
import { makeClientError } from '../errors.js';
import type { FetchLike } from '../types.js';
import { refusal, type StreamConnection, type StreamFrames } from './frames.js';

/** What the gateway asks for (`retry: 2000`); used when a stream ends without saying. */
const DEFAULT_RETRY_MS = 2000;

export interface EventStreamRequest {
  url: URL;
  token: string;
  /** Aborting it closes the stream: reading throws its reason. */
  signal: AbortSignal;
  /**
   * The longest wait for a byte. Before the first one, silence means something buffers the stream
   * (a refusal: fall back); after it, a dead connection (heartbeats stopped).
   */
  silenceMs: number;
}

/** Opens `GET /v1/stream` and yields its events as poll answers (see StreamFrame). */
export function openEventStream(fetchImpl: FetchLike, request: EventStreamRequest): StreamConnection {
  return { frames: readEventStream(fetchImpl, request) };
}

async function* readEventStream(fetchImpl: FetchLike, request: EventStreamRequest): StreamFrames {
  const { signal, silenceMs } = request;
  if (signal.aborted) throw signal.reason;
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let opened = false;
  let silent = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    timer = setTimeout(() => {
      silent = true;
      controller.abort();
    }, silenceMs);
  };
  const unwatch = () => clearTimeout(timer);
  const failure = (cause: unknown): unknown => {
    if (signal.aborted) return signal.reason;
    if (!silent) return makeClientError(networkFailure('GET ' + request.url.pathname, cause));
    if (opened) return makeClientError({ ...timeoutFailure(silenceMs), message: `The event stream fell silent for ${silenceMs} ms (no event, no heartbeat)` });
    return refusal(makeClientError({ ...timeoutFailure(silenceMs), message: `No byte of the event stream within ${silenceMs} ms: something in between buffers it` }));
  };

  try {
    // Watched from the request on: a buffering proxy may hold back the headers too.
    watch();
    let response: Response;
    try {
      response = await fetchImpl(request.url.href, {
        method: 'GET',
        headers: { Authorization: `Bearer ${request.token}`, Accept: 'text/event-stream' },
        signal: controller.signal,
        cache: 'no-store',
      });
    } catch (error) {
      throw failure(error);
    }
    if (response.status < 200 || response.status > 299) {
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        throw failure(error);
      }
      const error = makeClientError(httpFailure({ status: response.status, text, header: (name) => response.headers.get(name) }));
      // 401: every transport would be refused alike (the loop asks for a fresh token once);
      // 5xx, 429: transient. Anything else says this gateway (or a proxy) does not stream here.
      throw error.retryable || response.status === 401 ? error : refusal(error);
    }
    const type = response.headers.get('Content-Type') || '';
    if (!/^text\/event-stream/i.test(type) || !response.body) {
      await response.body?.cancel().catch(() => {});
      throw refusal(makeClientError(protocolFailure(`Expected an event stream from GET ${request.url.pathname}, got ${JSON.stringify(type)}`)));
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = createEventStreamParser();
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        throw failure(error);
      } finally {
        unwatch();
      }
      if (chunk.done) {
        if (!opened) throw refusal(makeClientError(protocolFailure(`The event stream of GET ${request.url.pathname} ended before its first byte`)));
        return { reason: 'ended', reconnectAfterMs: parser.retryMs() ?? DEFAULT_RETRY_MS };
      }
      if (!opened) {
        opened = true;
        yield { type: 'open' };
      }
      for (const data of parser.push(decoder.decode(chunk.value, { stream: true }))) yield { type: 'answer', text: data };
      // Not while the application takes an event: only the wait for the next byte is watched.
      watch();
    }
  } finally {
    unwatch();
    signal.removeEventListener('abort', onAbort);
    // Ends the response when the reader stopped early (a stop, a failure in a callback).
    controller.abort();
  }
}

export interface EventStreamParser {
  /** Takes the next piece of text; returns the data of each event it completed, in order. */
  push(text: string): string[];
  /** The last `retry:` the stream sent, in milliseconds. */
  retryMs(): number | undefined;
}

const LINE_END = /\r\n|\r|\n/g;

/**
 * The event stream format (WHATWG HTML, 9.2.6) as far as the gateway uses it: `data:` lines
 * make an event, a blank line ends it, `retry:` sets the reconnection delay, comments (the
 * heartbeats) are skipped. `id:` is not kept: the poller resumes from what it took and saved,
 * which an id cannot know.
 */
export function createEventStreamParser(): EventStreamParser {
  let buffer = '';
  let started = false;
  let data: string[] = [];
  let retry: number | undefined;

  function takeLine(line: string, events: string[]): void {
    if (line === '') {
      if (data.length > 0) events.push(data.join('\n'));
      data = [];
      return;
    }
    if (line.charAt(0) === ':') return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charAt(0) === ' ') value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }

  return {
    push(text) {
      buffer += text;
      if (!started && buffer !== '') {
        started = true;
        if (buffer.charCodeAt(0) === 0xfeff) buffer = buffer.slice(1);
      }
      const events: string[] = [];
      let start = 0;
      LINE_END.lastIndex = 0;
      for (let match = LINE_END.exec(buffer); match; match = LINE_END.exec(buffer)) {
        // A CR that ends the text may be the first half of a CRLF whose LF comes in the next piece.
        if (match[0] === '\r' && LINE_END.lastIndex === buffer.length) break;
        takeLine(buffer.slice(start, match.index), events);
        start = LINE_END.lastIndex;
      }
      buffer = buffer.slice(start);
      return events;
    },
    retryMs: () => retry,
  };
}
