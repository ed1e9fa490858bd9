import type Router from '@koa/router';
import { z } from 'zod';
import type { Engine } from '../../core/engine.js';
import { GatewayError } from '../../errors.js';
import type { MessageDraft } from '../../store/types.js';
import { readJsonBody } from '../body.js';
import { parseOrThrow, userIdSchema } from '../validation.js';

export interface MessageRouteOptions {
  maxMessageBytes: number;
  maxBatchMessages: number;
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
    status: 429,
    retryAfterSeconds: refusal.retryAfterSeconds,
  });
}

const clientMessageIdSchema = z.string().min(1).max(128);
const publishSchema = z.strictObject({
  to: userIdSchema,
  id: clientMessageIdSchema.optional(),
  body: z.unknown().refine((body) => body !== undefined, 'is required'),
});
type PublishInput = z.infer<typeof publishSchema>;

/** Bytes of JSON framing allowed around a message body in the request. */
const ENVELOPE_BYTES = 4 * 1024;

/**
 * POST /v1/messages {to, id?, body} and POST /v1/messages/batch {messages: [...]}.
 * The sender is always the token's subject, never a field of the request.
 */
export function registerMessageRoutes(router: Router, engine: Engine, options: MessageRouteOptions, admission?: PublishAdmission): void {
  const batchSchema = z.strictObject({ messages: z.array(publishSchema).min(1).max(options.maxBatchMessages) });

  function toDraft(senderId: string, input: PublishInput, index?: number): MessageDraft {
    const body = JSON.stringify(input.body);
    if (Buffer.byteLength(body) > options.maxMessageBytes) {
      const where = index === undefined ? '`body`' : `\`messages.${index}.body\``;
      throw new GatewayError('message_too_large', `${where} exceeds ${options.maxMessageBytes} bytes of JSON.`, { status: 413 });
    }
    return { userId: input.to, senderId, clientMessageId: input.id, body };
  }

  router.post('/v1/messages', async function publishMessage(ctx) {
    const input = parseOrThrow(publishSchema, await readJsonBody(ctx, options.maxMessageBytes + ENVELOPE_BYTES));
    const draft = toDraft(ctx.state.userId, input);
    admitOrThrow(admission, ctx, 1);
    const result = await engine.publish(draft);
    ctx.status = result.duplicate ? 200 : 201;
    ctx.body = { id: result.id, duplicate: result.duplicate };
  });

  router.post('/v1/messages/batch', async function publishBatch(ctx) {
    const limit = Math.min(options.maxBatchMessages * (options.maxMessageBytes + ENVELOPE_BYTES), 16 * 1024 * 1024);
    const input = parseOrThrow(batchSchema, await readJsonBody(ctx, limit));
    // Validate every item before storing any, so a bad item never leaves a half-stored batch.
    const drafts = input.messages.map((message, index) => toDraft(ctx.state.userId, message, index));
    admitOrThrow(admission, ctx, drafts.length);
    const results = await engine.publishMany(drafts);
    ctx.status = results.every((result) => result.duplicate) ? 200 : 201;
    ctx.body = { results: results.map((result) => ({ id: result.id, duplicate: result.duplicate })) };
  });
}
