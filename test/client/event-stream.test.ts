import { describe, expect, it } from 'vitest';
import type { FetchLike } from '../../src/client/index.js';
import { createEventStreamParser, openEventStream } from '../../src/client/transports/event-stream.js';
import { isRefusal, type StreamFrame } from '../../src/client/transports/frames.js';

/** A fetch answering with `chunks` as an event stream, one chunk per read (then holding or ending). */
function streamingFetch(chunks: string[], options: { status?: number; type?: string; end?: boolean } = {}): FetchLike {
  return async (_input, init) => {
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        if (options.end) controller.close();
        init.signal?.addEventListener('abort', () => controller.error(init.signal!.reason));
      },
    });
    return new Response(body, { status: options.status ?? 200, headers: { 'Content-Type': options.type ?? 'text/event-stream; charset=utf-8' } });
  };
}

async function read(fetch: FetchLike, silenceMs = 1000) {
  const controller = new AbortController();
  const frames: StreamFrame[] = [];
  const { frames: stream } = openEventStream(fetch, { url: new URL('http://gateway.test/v1/stream?cursor=0'), token: 't', signal: controller.signal, silenceMs });
  try {
    for (;;) {
      const next = await stream.next();
      if (next.done) return { frames, end: next.value };
      frames.push(next.value);
    }
  } catch (error) {
    return { frames, error };
  } finally {
    controller.abort();
  }
}

describe('the event stream parser', () => {
  it('completes events at a blank line, joins data lines, skips comments and keeps the last retry', () => {
    const parser = createEventStreamParser();
    expect(parser.push('retry: 2000\n\n:\n\nid: 3;room@1\ndata: {"cursor":3}\n\n')).toEqual(['{"cursor":3}']);
    expect(parser.push('data: a\ndata:b\n\ndata\n\n')).toEqual(['a\nb', '']);
    expect(parser.retryMs()).toBe(2000);
  });

  it('reads CRLF and CR line ends, also when one is split between two pieces, and a leading BOM', () => {
    const parser = createEventStreamParser();
    expect(parser.push('\uFEFFdata: one\r')).toEqual([]);
    // The last CR waits: it could be the first half of a CRLF.
    expect(parser.push('\n\r\ndata: two\r\r')).toEqual(['one']);
    expect(parser.push('data: thr')).toEqual(['two']);
    expect(parser.push('ee\n')).toEqual([]);
    expect(parser.push('\n')).toEqual(['three']);
  });
});

describe('reading GET /v1/stream with fetch', () => {
  it('yields open at the first byte, then each event as a poll answer, and how long to wait after the end', async () => {
    const { frames, end } = await read(streamingFetch(['retry: 1500\n\n', ':\n\ndata: {"messages":[],"cursor":1}\n\ndata: {"messages":[],', '"cursor":2}\n\n'], { end: true }));
    expect(frames).toEqual([
      { type: 'open' },
      { type: 'answer', text: '{"messages":[],"cursor":1}' },
      { type: 'answer', text: '{"messages":[],"cursor":2}' },
    ]);
    expect(end).toEqual({ reason: 'ended', reconnectAfterMs: 1500 });
  });

  it('sends the token as a Bearer header and asks for an event stream', async () => {
    let headers: Headers | undefined;
    await read(async (input, init) => {
      headers = new Headers(init.headers);
      return streamingFetch([], { end: true })(input, init);
    });
    expect(headers?.get('authorization')).toBe('Bearer t');
    expect(headers?.get('accept')).toBe('text/event-stream');
  });

  it.each([
    ['a 404 (no stream route here)', streamingFetch(['{"error":{"code":"not_found","message":"no"}}'], { status: 404, type: 'application/json', end: true }), 'not_found'],
    ['a 403 (refused alike elsewhere, and told there)', streamingFetch(['{"error":{"code":"forbidden_topic","message":"no"}}'], { status: 403, type: 'application/json', end: true }), 'forbidden_topic'],
    ['a 200 that is no event stream (a proxy page)', streamingFetch(['<html>'], { type: 'text/html', end: true }), 'invalid_response'],
    ['silence from the request on (a buffering proxy)', streamingFetch([]), 'request_timeout'],
  ])('refuses on %s: the poller falls back', async (_case, fetch, code) => {
    const { error } = await read(fetch, 100);
    expect(error).toMatchObject({ code });
    expect(isRefusal(error)).toBe(true);
  });

  it.each([
    ['a 503', streamingFetch(['{"error":{"code":"too_many_polls","message":"busy"}}'], { status: 503, type: 'application/json', end: true }), 'too_many_polls'],
    ['a 401 (the poller asks for a fresh token once)', streamingFetch(['{"error":{"code":"token_expired","message":"old"}}'], { status: 401, type: 'application/json', end: true }), 'token_expired'],
    ['silence after the first byte (heartbeats stopped: a dead connection)', streamingFetch(['retry: 2000\n\n']), 'request_timeout'],
  ])('fails without refusing on %s', async (_case, fetch, code) => {
    const { error } = await read(fetch, 100);
    expect(error).toMatchObject({ code });
    expect(isRefusal(error)).toBe(false);
  });
});
