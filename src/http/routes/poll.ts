import type Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import type { ServerResponse } from 'node:http';
import type { CancelSignal, Engine, PollResult, TopicCursor, TopicDelivery } from '../../core/engine.js';
import { isReceipt, type StoredMessage } from '../../core/model.js';
import type { PresenceEvent } from '../../presence/types.js';
import { assertMayUseTopics, mayUseTopic } from '../../auth/topic-policy.js';
import { GatewayError } from '../../errors.js';
import { assertOwnMailbox } from '../auth.js';
import { readJsonBody } from '../body.js';
import { topicCursorsFromBody, topicCursorsFromQuery } from '../topic-cursors.js';
import { cursorSchema, integerQuery, optionalStringQuery, parseOrThrow, userIdSchema } from '../validation.js';

/** Hold times and page sizes (POLL_WAIT_DEFAULT_S, POLL_WAIT_MAX_S, POLL_LIMIT_DEFAULT, POLL_LIMIT_MAX). */
export interface PollRouteOptions {
  waitDefaultSeconds: number;
  waitMaxSeconds: number;
  limitDefault: number;
  limitMax: number;
  /** Topics one poll may read (POLL_TOPICS_MAX). */
  topicsMax: number;
}

/**
 * Proxies and old browsers cache GETs unless told not to in every dialect; nginx buffers a held
 * response unless told not to.
 */
export function setNoCacheHeaders(ctx: Koa.Context): void {
  ctx.set('Cache-Control', 'no-store, no-cache, must-revalidate');
  ctx.set('Pragma', 'no-cache');
  ctx.set('Expires', '0');
  ctx.set('X-Accel-Buffering', 'no');
}

/**
 * Message bodies are stored as validated JSON text; splicing them in avoids a parse and a
 * re-stringify of every body on the hottest path.
 */
function messagesJson(messages: StoredMessage[]): string {
  return `[${messages
    .map(
      (message) =>
        `{"id":${message.id},"from":${JSON.stringify(message.senderId)},"body":${message.body},"createdAt":"${new Date(message.createdAt).toISOString()}"${
          message.expiresAt === null ? '' : `,"expiresAt":"${new Date(message.expiresAt).toISOString()}"`
        }}`,
    )
    .join(',')}]`;
}

/** A topic's messages as JSON array members: each also names its topic and its `seq` there. */
function topicMessagesJson(topic: string, messages: readonly StoredMessage[]): string {
  const name = JSON.stringify(topic);
  return messages
    .map(
      (message) =>
        `{"id":${message.id},"from":${JSON.stringify(message.senderId)},"body":${message.body},"createdAt":"${new Date(message.createdAt).toISOString()}"${
          message.expiresAt === null ? '' : `,"expiresAt":"${new Date(message.expiresAt).toISOString()}"`
        },"topic":${name},"seq":${message.seq}}`,
    )
    .join(',');
}

/**
 * Serialised once per page: after a broadcast, the readers at one position share one page object
 * (the engine's), and so one string, however many of them there are.
 */
const topicPagesJson = new WeakMap<readonly StoredMessage[], string>();
function topicDeliveryJson(delivery: TopicDelivery): string {
  let json = topicPagesJson.get(delivery.messages);
  if (json === undefined) topicPagesJson.set(delivery.messages, (json = topicMessagesJson(delivery.topic, delivery.messages)));
  return json;
}

/**
 * A poll answer: messages (the mailbox's, then each topic's), then (only when there are any) the
 * receipts that share the mailbox sequence with them (their stored body is already the receipt
 * object), the cursor, and for polls that read topics every topic's position and any resets.
 */
export function pollAnswerJson(result: PollResult): string {
  const messages: StoredMessage[] = [];
  const receipts: string[] = [];
  for (const message of result.messages) {
    if (isReceipt(message)) receipts.push(message.body);
    else messages.push(message);
  }
  let messagesPart = messagesJson(messages);
  let topicsPart = '';
  if (result.topics) {
    const members = result.topics.filter((topic) => topic.messages.length > 0).map(topicDeliveryJson);
    if (members.length > 0) messagesPart = `[${[messagesPart.slice(1, -1), ...members].filter((part) => part !== '').join(',')}]`;
    const positions = result.topics.map((topic) => `${JSON.stringify(topic.topic)}:${topic.position}`).join(',');
    const resets = result.topics.filter((topic) => topic.earliest !== undefined).map((topic) => `{"topic":${JSON.stringify(topic.topic)},"earliest":${topic.earliest}}`);
    topicsPart = `,"positions":{${positions}}${resets.length > 0 ? `,"resets":[${resets.join(',')}]` : ''}`;
  }
  const presencePart = result.presence ? `,"presence":${presenceEventsJson(result.presence)}` : '';
  return `{"messages":${messagesPart}${receipts.length > 0 ? `,"receipts":[${receipts.join(',')}]` : ''},"cursor":${result.cursor}${topicsPart}${presencePart}${result.superseded ? ',"superseded":true' : ''}}`;
}

/** Presence events as the API writes them (polls, streams, WebSocket frames): `at` as ISO time. */
export function presenceEventsJson(events: readonly PresenceEvent[]): string {
  return JSON.stringify(events.map((event) => ({ topic: event.topic, user: event.user, event: event.event, at: new Date(event.at).toISOString() })));
}

/**
 * 'close' on the response fires when the client goes away before we answer: the held poll is
 * released then instead of at its timeout. A CancelSignal with room for the engine's one listener,
 * instead of an AbortController per poll: those cost about 10 µs and a few hundred bytes of
 * EventTarget each (CPU profile and heap snapshot of 5,000 held polls).
 */
export class ClientGone implements CancelSignal {
  aborted = false;
  private listener: (() => void) | undefined;

  constructor(private readonly response: ServerResponse) {
    response.once('close', this.abort);
  }

  private readonly abort = (): void => {
    this.aborted = true;
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  };

  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }

  detach(): void {
    this.response.off('close', this.abort);
  }
}

const ackSchema = z.strictObject({ cursor: cursorSchema, user: userIdSchema.optional() });

/** POST /v1/poll's body: the query of GET /v1/poll as JSON, for many or long topic names. */
const pollBodySchema = z.strictObject({
  cursor: z.unknown().optional(),
  wait: z.unknown().optional(),
  limit: z.unknown().optional(),
  topics: z.unknown().optional(),
  client: z.unknown().optional(),
  presence: z.unknown().optional(),
});

/** A poller instance's id (`client`): what presence counts as one client of its user. */
const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function clientIdOf(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || !CLIENT_ID_PATTERN.test(value)) {
    throw new GatewayError('invalid_request', '`client` must be 1-64 characters of A-Z a-z 0-9 _ -.');
  }
  return value;
}

/** `presence=1` / `"presence": true`: answer with the joins and leaves of the poll's topics. */
export function presenceFlagOf(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === '0' || value === 'false') return false;
  if (value === true || value === '1' || value === 'true') return true;
  throw new GatewayError('invalid_request', '`presence` must be 1 or 0 (true or false).');
}

/** A whole number in [min, max] from a POST poll's body, or the fallback when absent (the GET's codes and messages). */
function integerField(value: unknown, name: string, { min, max, fallback, code }: { min: number; max: number; fallback: number; code: 'invalid_cursor' | 'invalid_wait' | 'invalid_limit' }): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new GatewayError(code, `\`${name}\` must be an integer between ${min} and ${max}.`);
  }
  return value;
}

export function registerPollRoutes(router: Router, engine: Engine, options: PollRouteOptions): void {
  /** Holds the poll and answers it: the one path of GET and POST /v1/poll. */
  async function answer(ctx: Koa.Context, cursor: number, waitSeconds: number, limit: number, topics: TopicCursor[], client: string | undefined, withPresence: boolean): Promise<void> {
    // Every topic is checked before anything is read: a poll with one forbidden topic gets nothing.
    const names = topics.map((topic) => topic.name);
    if (topics.length > 0) assertMayUseTopics(ctx.state.claims, names, 'read');
    // Only the topics whose presence the token may see; the others are read without it.
    const presence = withPresence ? names.filter((name) => mayUseTopic(ctx.state.claims, name, 'presence')) : [];
    const clientGone = new ClientGone(ctx.res);
    try {
      const result = await engine.holdPoll(ctx.state.userId, {
        cursor,
        waitMs: waitSeconds * 1000,
        limit,
        signal: clientGone,
        ...(topics.length > 0 ? { topics } : {}),
        ...(client !== undefined ? { client } : {}),
        ...(presence.length > 0 ? { presence } : {}),
      });
      setNoCacheHeaders(ctx);
      ctx.type = 'application/json';
      ctx.body = pollAnswerJson(result);
    } finally {
      clientGone.detach();
    }
  }

  const waitBounds = () => ({ min: 0, max: options.waitMaxSeconds, fallback: options.waitDefaultSeconds, code: 'invalid_wait' as const });
  const limitBounds = () => ({ min: 1, max: options.limitMax, fallback: options.limitDefault, code: 'invalid_limit' as const });
  const cursorBounds = { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0, code: 'invalid_cursor' as const };

  router.get('/v1/poll', async function holdPollRequest(ctx) {
    assertOwnMailbox(ctx, optionalStringQuery(ctx, 'user', 'invalid_request'));
    // Sent on every answer, errors included: a client whose `wait` was refused learns the limit.
    ctx.set('X-Poll-Wait-Max', String(options.waitMaxSeconds));
    const cursor = integerQuery(ctx, 'cursor', cursorBounds);
    const waitSeconds = integerQuery(ctx, 'wait', waitBounds());
    const limit = integerQuery(ctx, 'limit', limitBounds());
    const topics = topicCursorsFromQuery(ctx.query.topic, options.topicsMax);
    const client = clientIdOf(optionalStringQuery(ctx, 'client', 'invalid_request'));
    const withPresence = presenceFlagOf(optionalStringQuery(ctx, 'presence', 'invalid_request'));
    await answer(ctx, cursor, waitSeconds, limit, topics, client, withPresence);
  });

  router.post('/v1/poll', async function holdPollPost(ctx) {
    ctx.set('X-Poll-Wait-Max', String(options.waitMaxSeconds));
    // 64 topics of 128-character names and their positions fit in well under 16 KiB.
    const input = parseOrThrow(pollBodySchema, await readJsonBody(ctx, Math.max(16 * 1024, options.topicsMax * 200)));
    const cursor = integerField(input.cursor, 'cursor', cursorBounds);
    const waitSeconds = integerField(input.wait, 'wait', waitBounds());
    const limit = integerField(input.limit, 'limit', limitBounds());
    const topics = topicCursorsFromBody(input.topics, options.topicsMax);
    await answer(ctx, cursor, waitSeconds, limit, topics, clientIdOf(input.client), presenceFlagOf(input.presence));
  });

  router.post('/v1/ack', async function acknowledge(ctx) {
    const input = parseOrThrow(ackSchema, await readJsonBody(ctx, 1024));
    assertOwnMailbox(ctx, input.user);
    const acked = await engine.ackThrough(ctx.state.userId, input.cursor);
    setNoCacheHeaders(ctx);
    ctx.body = { acked, cursor: input.cursor };
  });
}
