import type Router from '@koa/router';
import type Koa from 'koa';
import { hasNews, type Engine, type TopicCursor } from '../../core/engine.js';
import { assertMayUseTopics, mayUseTopic } from '../../auth/topic-policy.js';
import { GatewayError } from '../../errors.js';
import { assertOwnMailbox } from '../auth.js';
import { topicCursorsFromQuery } from '../topic-cursors.js';
import { integerQuery, optionalStringQuery } from '../validation.js';
import { ClientGone, clientIdOf, pollAnswerJson, presenceFlagOf } from './poll.js';

export interface StreamRouteOptions {
  /** STREAM_HEARTBEAT_S, STREAM_MAX_S, STREAM_BUFFER_BYTES. */
  heartbeatSeconds: number;
  maxSeconds: number;
  bufferBytes: number;
  limitDefault: number;
  limitMax: number;
  topicsMax: number;
  /** MAX_HELD_POLLS: a stream is a held poll while it waits. */
  maxHeld: number;
  /** True once the gateway drains: streams end so that clients go elsewhere. */
  isDraining: () => boolean;
  /** An unexpected failure once the stream is open (it can no longer be an error answer). */
  onError: (error: unknown) => void;
}

/** What the browser waits before reconnecting a stream that ended (the `retry:` field). */
const RETRY_MS = 2_000;
/** For intermediaries that buffer the first bytes of a response before passing any on (`?pad=1`). */
const PADDING = `:${' '.repeat(2048)}\n\n`;

/**
 * A stream's `id:`: the mailbox cursor, then each topic's position (`12;room:42@7;announce@3`).
 * Opaque to clients: they hand it back as Last-Event-ID, which the browser does by itself.
 */
export function streamEventId(cursor: number, topics: readonly TopicCursor[]): string {
  return [String(cursor), ...topics.map((topic) => `${topic.name}@${topic.position ?? 0}`)].join(';');
}

/**
 * A Last-Event-ID back into a cursor and positions. It wins over the query's (a browser reconnects
 * with the URL it first opened); the query still says which topics are read.
 */
export function resumeFromEventId(eventId: string, topics: readonly TopicCursor[]): { cursor: number; topics: TopicCursor[] } {
  const [cursorPart, ...positions] = eventId.split(';');
  if (!/^\d{1,16}$/.test(cursorPart ?? '') || !Number.isSafeInteger(Number(cursorPart))) {
    throw new GatewayError('invalid_cursor', 'Last-Event-ID is not an id this gateway sent.');
  }
  const resumed = new Map<string, number>();
  for (const part of positions) {
    const at = part.lastIndexOf('@');
    const position = part.slice(at + 1);
    if (at <= 0 || !/^\d{1,16}$/.test(position)) throw new GatewayError('invalid_cursor', 'Last-Event-ID is not an id this gateway sent.');
    resumed.set(part.slice(0, at), Number(position));
  }
  return {
    cursor: Number(cursorPart),
    topics: topics.map((topic) => (resumed.has(topic.name) ? { name: topic.name, position: resumed.get(topic.name)! } : topic)),
  };
}

/**
 * GET /v1/stream: the poll as Server-Sent Events. The same query as GET /v1/poll (`cursor`,
 * `topic`, `client`, `presence`, `limit`); each event is one poll answer, its `id:` every position.
 * Nothing is acked by reading: the client acks with POST /v1/ack, so a stream lost with messages
 * in flight delivers them again, and receipts fire on the ack as for polls.
 */
export function registerStreamRoutes(router: Router, engine: Engine, options: StreamRouteOptions): void {
  router.get('/v1/stream', async function openStream(ctx: Koa.Context) {
    assertOwnMailbox(ctx, optionalStringQuery(ctx, 'user', 'invalid_request'));
    let cursor = integerQuery(ctx, 'cursor', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0, code: 'invalid_cursor' });
    const limit = integerQuery(ctx, 'limit', { min: 1, max: options.limitMax, fallback: options.limitDefault, code: 'invalid_limit' });
    let topics = topicCursorsFromQuery(ctx.query.topic, options.topicsMax);
    const client = clientIdOf(optionalStringQuery(ctx, 'client', 'invalid_request'));
    const withPresence = presenceFlagOf(optionalStringQuery(ctx, 'presence', 'invalid_request'));
    const pad = presenceFlagOf(optionalStringQuery(ctx, 'pad', 'invalid_request'));
    const lastEventId = ctx.get('Last-Event-ID');
    if (lastEventId !== '') ({ cursor, topics } = resumeFromEventId(lastEventId, topics));
    const names = topics.map((topic) => topic.name);
    if (names.length > 0) assertMayUseTopics(ctx.state.claims, names, 'read');
    const presence = withPresence ? names.filter((name) => mayUseTopic(ctx.state.claims, name, 'presence')) : [];
    if (options.isDraining() || engine.heldPolls >= options.maxHeld) {
      throw new GatewayError('too_many_polls', 'This gateway holds as many polls and streams as it may, or is shutting down; retry shortly.', { retryAfterSeconds: 1 });
    }

    // From here on the answer is the stream: Koa must not write a body of its own.
    ctx.respond = false;
    const response = ctx.res;
    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store, no-cache, must-revalidate',
      Pragma: 'no-cache',
      Expires: '0',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
    response.write(`${pad ? PADDING : ''}retry: ${RETRY_MS}\n\n`);

    const clientGone = new ClientGone(response);
    const endsAt = Date.now() + options.maxSeconds * 1000;
    let behind = false;
    const heartbeat = setInterval(() => response.write(':\n\n'), options.heartbeatSeconds * 1000);
    try {
      while (!clientGone.aborted && !options.isDraining()) {
        const remaining = endsAt - Date.now();
        if (remaining <= 0) break;
        const result = await engine.holdPoll(ctx.state.userId, {
          cursor,
          waitMs: remaining,
          limit,
          signal: clientGone,
          acknowledge: false,
          ...(topics.length > 0 ? { topics } : {}),
          ...(client !== undefined ? { client } : {}),
          ...(presence.length > 0 ? { presence } : {}),
        });
        // Another connection of the user took this one's place (POLL_MAX_PER_USER): end, and let
        // the client's reconnect decide, rather than take it back and start a tug of war.
        if (result.superseded || clientGone.aborted) break;
        if (!hasNews(result)) continue;
        // A reader that did not take what was sent before is cut rather than sent more: it resumes
        // from its last id, and memory stays bounded. (Measured before writing: one event larger
        // than the buffer is still sent to a reader that keeps up.)
        if (response.writableLength > options.bufferBytes) {
          behind = true;
          break;
        }
        cursor = result.cursor;
        if (result.topics) topics = result.topics.map((delivery) => ({ name: delivery.topic, position: delivery.position }));
        response.write(`id: ${streamEventId(cursor, topics)}\ndata: ${pollAnswerJson(result)}\n\n`);
      }
    } catch (error) {
      // The stream is open: an error can no longer be an answer. The client reconnects and resumes.
      if (!(error instanceof GatewayError)) options.onError(error);
    } finally {
      clearInterval(heartbeat);
      clientGone.detach();
      if (behind) response.destroy();
      else response.end();
    }
  });
}
