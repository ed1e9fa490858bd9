import type Router from '@koa/router';
import { z } from 'zod';
import { createPublishPolicy, type PublishDefault } from '../../auth/publish-policy.js';
import type { Engine } from '../../core/engine.js';
import { GatewayError } from '../../errors.js';
import { RECEIPT_SENDER, type MessageDraft } from '../../core/model.js';
import { readJsonBody } from '../body.js';
import { parseOrThrow, userIdSchema } from '../validation.js';

/** What a publish may contain (MAX_MESSAGE_BYTES, MAX_BATCH_MESSAGES, MESSAGE_TTL_DEFAULT_S, MESSAGE_TTL_MAX_S). */
export interface MessageLimits {
  /** Largest message `body`, as JSON bytes. */
  maxBytes: number;
  /** Items per batch publish. */
  maxBatch: number;
  /** Seconds a message without `ttl` lives; 0 = forever. */
  ttlDefaultSeconds: number;
  /** Largest `ttl` accepted. */
  ttlMaxSeconds: number;
}

export interface MessageRouteOptions {
  limits: MessageLimits;
  /** Recipients of a token without a `pub` claim (PUBLISH_DEFAULT). */
  publishDefault: PublishDefault;
}

/** Decides whether a sender (and its address) may publish `messages` more now; undefined = yes. */
export interface PublishAdmission {
  admit(userId: string, ip: string, messages: number): { scope: 'user' | 'ip'; retryAfterSeconds: number } | undefined;
}

function admitOrThrow(admission: PublishAdmission | undefined, ctx: { state: { userId: string }; ip: string }, messages: number): void {
  const refusal = admission?.admit(ctx.state.userId, ctx.ip, messages);
  if (!refusal) return;
  const who = refusal.scope === 'user' ? 'this sender' : 'this address';
  throw new GatewayError('rate_limited', `Too many messages from ${who}; retry after ${refusal.retryAfterSeconds} s.`, {
    retryAfterSeconds: refusal.retryAfterSeconds,
  });
}

const clientMessageIdSchema = z.string().min(1).max(128);
const publishSchema = z.strictObject({
  to: userIdSchema,
  id: clientMessageIdSchema.optional(),
  body: z.unknown().refine((body) => body !== undefined, 'is required'),
  // Checked in toDraft, against MESSAGE_TTL_MAX_S, with its own error code.
  ttl: z.unknown().optional(),
  receipt: z.boolean().optional(),
});
type PublishInput = z.infer<typeof publishSchema>;

/** Bytes of JSON framing allowed around a message body in the request. */
const ENVELOPE_BYTES = 4 * 1024;

/**
 * POST /v1/messages {to, id?, body} and POST /v1/messages/batch {messages: [...]}.
 * The sender is always the token's subject, never a field of the request. Authentication already
 * required the `publish` scope; the token's `pub` claim (or PUBLISH_DEFAULT) decides the recipients.
 */
export function registerMessageRoutes(
  router: Router,
  engine: Engine,
  options: MessageRouteOptions,
  admission?: PublishAdmission,
): void {
  const { limits } = options;
  const batchSchema = z.strictObject({ messages: z.array(publishSchema).min(1).max(limits.maxBatch) });
  const publishPolicy = createPublishPolicy({ publishDefault: options.publishDefault });

  function toDraft(senderId: string, input: PublishInput, index?: number): MessageDraft {
    const body = JSON.stringify(input.body);
    if (Buffer.byteLength(body) > limits.maxBytes) {
      const where = index === undefined ? '`body`' : `\`messages.${index}.body\``;
      throw new GatewayError('message_too_large', `${where} exceeds ${limits.maxBytes} bytes of JSON.`);
    }
    return { userId: input.to, senderId, clientMessageId: input.id, body, ttlSeconds: ttlOf(input.ttl, index), receipt: input.receipt === true };
  }

  /** Seconds the message lives: `ttl` when given (1 … MESSAGE_TTL_MAX_S), else the default; undefined = forever. */
  function ttlOf(ttl: unknown, index?: number): number | undefined {
    if (ttl === undefined) return limits.ttlDefaultSeconds > 0 ? limits.ttlDefaultSeconds : undefined;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > limits.ttlMaxSeconds) {
      const where = index === undefined ? '`ttl`' : `\`messages.${index}.ttl\``;
      throw new GatewayError('invalid_ttl', `${where} must be a whole number of seconds from 1 to ${limits.ttlMaxSeconds}.`);
    }
    return ttl;
  }

  router.post('/v1/messages', async function publishMessage(ctx) {
    const input = parseOrThrow(publishSchema, await readJsonBody(ctx, limits.maxBytes + ENVELOPE_BYTES));
    publishPolicy.assertMayPublishTo(ctx.state.claims, [input.to]);
    const draft = toDraft(ctx.state.userId, input);
    admitOrThrow(admission, ctx, 1);
    const result = await engine.publish(draft);
    ctx.status = result.duplicate ? 200 : 201;
    ctx.body = { id: result.id, duplicate: result.duplicate };
  });

  router.post('/v1/messages/batch', async function publishBatch(ctx) {
    const limit = Math.min(limits.maxBatch * (limits.maxBytes + ENVELOPE_BYTES), 16 * 1024 * 1024);
    const input = parseOrThrow(batchSchema, await readJsonBody(ctx, limit));
    // Validate and authorize every item before storing any, so a bad or refused item never leaves
    // a half-stored batch.
    publishPolicy.assertMayPublishTo(
      ctx.state.claims,
      input.messages.map((message) => message.to),
      (index) => `messages.${index}.to`,
    );
    const drafts = input.messages.map((message, index) => toDraft(ctx.state.userId, message, index));
    admitOrThrow(admission, ctx, drafts.length);
    const results = await engine.publishMany(drafts);
    ctx.status = results.every((result) => result.duplicate) ? 200 : 201;
    ctx.body = { results: results.map((result) => ({ id: result.id, duplicate: result.duplicate })) };
  });

  router.get('/v1/messages/:id', async function reportMessageStatus(ctx) {
    const id = Number(ctx.params.id);
    if (!/^\d{1,15}$/.test(ctx.params.id ?? '') || !Number.isSafeInteger(id) || id < 1) {
      throw new GatewayError('invalid_request', '`id` must be a message id (a positive integer).');
    }
    const status = await engine.messageStatus(id);
    // A receipt is not a message anyone sent; an unknown id and a receipt answer alike.
    if (!status || status.from === RECEIPT_SENDER) throw new GatewayError('not_found', `No message ${id}.`);
    if (status.from !== ctx.state.userId) throw new GatewayError('forbidden', 'Only the sender of a message may ask about it.');
    ctx.set('Cache-Control', 'no-store');
    const iso = (ms: number | null) => (ms === null ? undefined : new Date(ms).toISOString());
    ctx.body = { id: status.id, to: status.to, status: status.status, createdAt: iso(status.createdAt), ackedAt: iso(status.ackedAt), expiresAt: iso(status.expiresAt) };
  });
}
