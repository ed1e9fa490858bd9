import type Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import type { ServerResponse } from 'node:http';
import type { CancelSignal, Engine, PollResult } from '../../core/engine.js';
import { isReceipt, type StoredMessage } from '../../core/model.js';
import { assertOwnMailbox } from '../auth.js';
import { readJsonBody } from '../body.js';
import { cursorSchema, integerQuery, optionalStringQuery, parseOrThrow, userIdSchema } from '../validation.js';

/** Hold times and page sizes (POLL_WAIT_DEFAULT_S, POLL_WAIT_MAX_S, POLL_LIMIT_DEFAULT, POLL_LIMIT_MAX). */
export interface PollRouteOptions {
  waitDefaultSeconds: number;
  waitMaxSeconds: number;
  limitDefault: number;
  limitMax: number;
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

/**
 * A poll answer: messages, then (only when there are any) the receipts that share the mailbox
 * sequence with them; their stored body is already the receipt object.
 */
function pollAnswerJson(result: PollResult): string {
  const messages: StoredMessage[] = [];
  const receipts: string[] = [];
  for (const message of result.messages) {
    if (isReceipt(message)) receipts.push(message.body);
    else messages.push(message);
  }
  return `{"messages":${messagesJson(messages)}${receipts.length > 0 ? `,"receipts":[${receipts.join(',')}]` : ''},"cursor":${result.cursor}${result.superseded ? ',"superseded":true' : ''}}`;
}

/**
 * 'close' on the response fires when the client goes away before we answer: the held poll is
 * released then instead of at its timeout. A CancelSignal with room for the engine's one listener,
 * instead of an AbortController per poll: those cost about 10 µs and a few hundred bytes of
 * EventTarget each (CPU profile and heap snapshot of 5,000 held polls).
 */
class ClientGone implements CancelSignal {
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

export function registerPollRoutes(router: Router, engine: Engine, options: PollRouteOptions): void {
  router.get('/v1/poll', async function holdPollRequest(ctx) {
    assertOwnMailbox(ctx, optionalStringQuery(ctx, 'user', 'invalid_request'));
    // Sent on every answer, errors included: a client whose `wait` was refused learns the limit.
    ctx.set('X-Poll-Wait-Max', String(options.waitMaxSeconds));
    const cursor = integerQuery(ctx, 'cursor', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0, code: 'invalid_cursor' });
    const waitSeconds = integerQuery(ctx, 'wait', {
      min: 0,
      max: options.waitMaxSeconds,
      fallback: options.waitDefaultSeconds,
      code: 'invalid_wait',
    });
    const limit = integerQuery(ctx, 'limit', { min: 1, max: options.limitMax, fallback: options.limitDefault, code: 'invalid_limit' });

    const clientGone = new ClientGone(ctx.res);
    try {
      const result = await engine.holdPoll(ctx.state.userId, { cursor, waitMs: waitSeconds * 1000, limit, signal: clientGone });
      setNoCacheHeaders(ctx);
      ctx.type = 'application/json';
      ctx.body = pollAnswerJson(result);
    } finally {
      clientGone.detach();
    }
  });

  router.post('/v1/ack', async function acknowledge(ctx) {
    const input = parseOrThrow(ackSchema, await readJsonBody(ctx, 1024));
    assertOwnMailbox(ctx, input.user);
    const acked = await engine.ackThrough(ctx.state.userId, input.cursor);
    setNoCacheHeaders(ctx);
    ctx.body = { acked, cursor: input.cursor };
  });
}
