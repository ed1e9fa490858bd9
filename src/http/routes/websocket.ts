import type Router from '@koa/router';
import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { assertMayUseTopics, mayUseTopic } from '../../auth/topic-policy.js';
import type { TokenClaims } from '../../auth/claims.js';
import { hasNews, type CancelSignal, type Engine, type PollResult, type TopicCursor } from '../../core/engine.js';
import { TOPIC_NAME_PATTERN } from '../../core/model.js';
import { GatewayError, isGatewayError } from '../../errors.js';
import { assertOwnMailbox } from '../auth.js';
import { topicCursorsFromQuery } from '../topic-cursors.js';
import { integerQuery, optionalStringQuery } from '../validation.js';
import { takeUpgrade, pendingUpgradeOf } from '../websocket-upgrade.js';
import { clientIdOf, pollAnswerJson, presenceEventsJson, presenceFlagOf } from './poll.js';

export interface WebSocketRouteOptions {
  limitDefault: number;
  limitMax: number;
  topicsMax: number;
  /** MAX_HELD_POLLS: a connection is a held poll while it waits. */
  maxHeld: number;
  /** STREAM_BUFFER_BYTES: a reader further behind is disconnected (it resumes from its position). */
  bufferBytes: number;
  /** WS_PING_S: a ping this often; a peer that misses two pongs is closed. */
  pingSeconds: number;
  /** CORS_ORIGINS: the browser origins (besides the gateway's own) that may open one. */
  corsOrigins: readonly string[];
  isDraining: () => boolean;
  onError: (error: unknown) => void;
}

/** Frames a client may send are small (an ack, a subscription); larger ones close with 1009. */
export const WS_MAX_FRAME_BYTES = 64 * 1024;

/** Close codes: the standard ones, and 4401 for an expired token (the HTTP status, as 4xxx). */
const CLOSE = { normal: 1000, goingAway: 1001, unsupported: 1003, policy: 1008, tokenExpired: 4401 } as const;

/**
 * Whether a browser page of `origin` may open a WebSocket here: the CORS allow-list's origins (or
 * `*`), or the gateway's own origin. A request without Origin is not from a browser page.
 */
function originAllowed(origin: string | undefined, host: string | undefined, allowList: readonly string[]): boolean {
  if (origin === undefined || origin === '') return true;
  if (allowList.includes('*') || allowList.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** One wait of the session's loop, cut short by a subscription change or the socket closing. */
class Interrupt implements CancelSignal {
  aborted = false;
  private listener: (() => void) | undefined;
  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }
  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }
  abort(): void {
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }
}

/** A client frame, checked; a GatewayError names what is wrong with it. */
type ClientFrame = { type: 'ack'; cursor: number } | { type: 'subscribe'; topic: string; position: number | null } | { type: 'unsubscribe'; topic: string };

function parseFrame(text: string): ClientFrame {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    throw new GatewayError('invalid_json', 'A frame must be a JSON object.');
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new GatewayError('invalid_request', 'A frame must be a JSON object with a `type`.');
  const { type, cursor, topic, position } = frame as Record<string, unknown>;
  const cursorOk = (value: unknown) => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
  if (type === 'ack') {
    if (!cursorOk(cursor)) throw new GatewayError('invalid_cursor', '`cursor` must be a whole number from 0.');
    return { type, cursor: cursor as number };
  }
  if (type === 'subscribe' || type === 'unsubscribe') {
    if (typeof topic !== 'string' || !TOPIC_NAME_PATTERN.test(topic)) throw new GatewayError('invalid_topic', '`topic` must be a topic name (1-128 characters of A-Z a-z 0-9 . _ : -).');
    if (type === 'unsubscribe') return { type, topic };
    if (position !== undefined && position !== null && !cursorOk(position)) throw new GatewayError('invalid_cursor', '`position` must be a whole number from 0, or absent (from now).');
    return { type, topic, position: (position as number | null | undefined) ?? null };
  }
  throw new GatewayError('invalid_request', 'A frame\'s `type` must be ack, subscribe or unsubscribe.');
}

/**
 * GET /v1/ws: the poll over a WebSocket (the `ws` package does the framing). Unlike an SSE stream
 * it has no STREAM_MAX_S: it lasts until either side closes it, the token expires or the gateway
 * drains. The upgrade request
 * takes the poll's query (`cursor`, `topic`, `client`, `presence`, `limit`) and the token as
 * `access_token`. Server frames: `{"type":"batch", …a poll answer…}` and
 * `{"type":"presence","events":[…]}`; client frames: `{"type":"ack","cursor"}`,
 * `{"type":"subscribe","topic","position"}`, `{"type":"unsubscribe","topic"}`. Nothing is acked
 * until an ack frame (or POST /v1/ack), so a lost connection delivers again.
 */
export function registerWebSocketRoute(router: Router, engine: Engine, options: WebSocketRouteOptions): void {
  const server = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_FRAME_BYTES, perMessageDeflate: false });
  // The 101 carries what the app set on the response it did not send (the request id, a worker's
  // X-Gateway-Worker): ws writes that answer itself.
  server.on('headers', (headers: string[], request: IncomingMessage) => {
    for (const [name, value] of acceptedHeaders.get(request) ?? []) headers.push(`${name}: ${value}`);
  });
  const acceptedHeaders = new WeakMap<IncomingMessage, Array<[string, string]>>();

  router.get('/v1/ws', async function openWebSocket(ctx: Koa.Context) {
    if (!pendingUpgradeOf(ctx.req) || ctx.get('Upgrade').toLowerCase() !== 'websocket') {
      throw new GatewayError('invalid_request', 'GET /v1/ws is a WebSocket: send it as an upgrade request.');
    }
    assertOwnMailbox(ctx, optionalStringQuery(ctx, 'user', 'invalid_request'));
    if (!originAllowed(ctx.get('Origin') || undefined, ctx.get('Host') || undefined, options.corsOrigins)) {
      throw new GatewayError('forbidden', 'This origin may not open a WebSocket here (CORS_ORIGINS).');
    }
    const cursor = integerQuery(ctx, 'cursor', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0, code: 'invalid_cursor' });
    const limit = integerQuery(ctx, 'limit', { min: 1, max: options.limitMax, fallback: options.limitDefault, code: 'invalid_limit' });
    const topics = topicCursorsFromQuery(ctx.query.topic, options.topicsMax);
    const client = clientIdOf(optionalStringQuery(ctx, 'client', 'invalid_request'));
    const withPresence = presenceFlagOf(optionalStringQuery(ctx, 'presence', 'invalid_request'));
    if (topics.length > 0) assertMayUseTopics(ctx.state.claims, topics.map((topic) => topic.name), 'read');
    if (options.isDraining() || engine.heldPolls >= options.maxHeld) {
      throw new GatewayError('too_many_polls', 'This gateway holds as many polls and connections as it may, or is shutting down; retry shortly.', { retryAfterSeconds: 1 });
    }
    ctx.respond = false;
    acceptedHeaders.set(
      ctx.req,
      ['X-Request-Id', 'X-Gateway-Worker'].flatMap((name): Array<[string, string]> => {
        const value = ctx.res.getHeader(name);
        return typeof value === 'string' ? [[name, value]] : [];
      }),
    );
    const upgrade = takeUpgrade(ctx.req, ctx.res)!;
    const claims: TokenClaims = ctx.state.claims;
    const userId: string = ctx.state.userId;
    server.handleUpgrade(ctx.req, upgrade.socket, upgrade.head, (socket) => {
      runSession(socket, { userId, claims, cursor, limit, topics, client, withPresence }).catch(options.onError);
    });
  });

  async function runSession(
    socket: WebSocket,
    session: { userId: string; claims: TokenClaims; cursor: number; limit: number; topics: TopicCursor[]; client: string | undefined; withPresence: boolean },
  ): Promise<void> {
    const { userId, claims, limit, client, withPresence } = session;
    let { cursor, topics } = session;
    let interrupt = new Interrupt();
    let closed = false;
    const close = (code: number, reason: string) => {
      if (closed) return;
      closed = true;
      interrupt.abort();
      socket.close(code, reason);
    };
    socket.on('close', () => {
      closed = true;
      interrupt.abort();
    });
    socket.on('error', () => socket.terminate());

    let missedPongs = 0;
    socket.on('pong', () => (missedPongs = 0));
    const pinger = setInterval(() => {
      if (missedPongs >= 2) {
        socket.terminate();
        return;
      }
      missedPongs += 1;
      socket.ping();
    }, options.pingSeconds * 1000);
    const expiry =
      claims.expiresAt === undefined ? undefined : setTimeout(() => close(CLOSE.tokenExpired, 'token_expired'), Math.max(0, claims.expiresAt - Date.now()));

    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return close(CLOSE.unsupported, 'invalid_json');
      let frame: ClientFrame;
      try {
        frame = parseFrame(data.toString());
        if (frame.type === 'subscribe') {
          const { topic: name, position } = frame;
          assertMayUseTopics(claims, [name], 'read');
          const others = topics.filter((topic) => topic.name !== name);
          if (others.length >= options.topicsMax) throw new GatewayError('too_many_topics', `A connection may read at most ${options.topicsMax} topics (POLL_TOPICS_MAX).`);
          topics = [...others, { name, position }];
          interrupt.abort();
        } else if (frame.type === 'unsubscribe') {
          const name = frame.topic;
          topics = topics.filter((topic) => topic.name !== name);
          interrupt.abort();
        } else {
          // Folded with the other acks of the moment into one statement, as a poll's cursor is:
          // nobody waits for its count (one UPDATE per ack frame cost more than the re-poll it saves).
          engine.acknowledge(userId, frame.cursor);
        }
      } catch (error) {
        if (!isGatewayError(error)) throw error;
        close(error.code === 'invalid_json' ? CLOSE.unsupported : CLOSE.policy, error.code);
      }
    });

    try {
      while (!closed) {
        if (options.isDraining()) {
          close(CLOSE.goingAway, 'draining');
          break;
        }
        interrupt = new Interrupt();
        const presence = withPresence ? topics.filter((topic) => mayUseTopic(claims, topic.name, 'presence')).map((topic) => topic.name) : [];
        const asked = topics;
        let result: PollResult;
        try {
          result = await engine.holdPoll(userId, {
            cursor,
            waitMs: 60_000,
            limit,
            signal: interrupt,
            acknowledge: false,
            ...(asked.length > 0 ? { topics: asked } : {}),
            ...(client !== undefined ? { client } : {}),
            ...(presence.length > 0 ? { presence } : {}),
          });
        } catch (error) {
          // The store failed or the gateway is full: the client reconnects and resumes.
          close(CLOSE.goingAway, isGatewayError(error) ? error.code : 'internal_error');
          if (!isGatewayError(error)) options.onError(error);
          break;
        }
        if (closed) break;
        if (result.superseded) {
          close(CLOSE.normal, 'superseded');
          break;
        }
        // A reader that did not take what was sent before is cut rather than sent more: it
        // resumes from its position, and memory stays bounded.
        if (hasNews(result) && socket.bufferedAmount > options.bufferBytes) {
          socket.terminate();
          break;
        }
        // Presence events go in frames of their own; the batch frame is the rest of the answer.
        const { presence: events, ...batch } = result;
        if (events) socket.send(`{"type":"presence","events":${presenceEventsJson(events)}}`);
        // Each topic asked moves to its answered position (also "from now" ones that learnt theirs
        // without news); one re-subscribed meanwhile (a new object) keeps the position it was given.
        if (result.topics) {
          const answered = new Map(asked.map((topic, index) => [topic, result.topics![index]!.position]));
          topics = topics.map((topic) => (answered.has(topic) ? { name: topic.name, position: answered.get(topic)! } : topic));
        }
        if (!hasNews(batch)) continue;
        cursor = result.cursor;
        socket.send(`{"type":"batch",${pollAnswerJson(batch).slice(1)}`);
      }
    } finally {
      clearInterval(pinger);
      clearTimeout(expiry);
    }
  }
}
