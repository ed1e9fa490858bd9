import type Router from '@koa/router';
import { z } from 'zod';
import { createPublishPolicy, type PublishDefault } from '../../auth/publish-policy.js';
import type { Engine } from '../../core/engine.js';
import { GatewayError } from '../../errors.js';
import { assertMayUseTopics } from '../../auth/topic-policy.js';
import type { TokenClaims } from '../../auth/claims.js';
import { RECEIPT_SENDER, TOPIC_NAME_PATTERN, topicKey, topicOfKey, type InsertResult, type MessageDraft } from '../../core/model.js';
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
  // Exactly one of the two (checked in addressOf): a user's mailbox, or a topic.
  to: userIdSchema.optional(),
  // Checked in addressOf, with its own error code.
  topic: z.unknown().optional(),
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
    const address = addressOf(input, index);
    const body = JSON.stringify(input.body);
    if (Buffer.byteLength(body) > limits.maxBytes) {
      const where = index === undefined ? '`body`' : `\`messages.${index}.body\``;
      throw new GatewayError('message_too_large', `${where} exceeds ${limits.maxBytes} bytes of JSON.`);
    }
    const userId = 'topic' in address ? topicKey(address.topic) : address.to;
    return { userId, senderId, clientMessageId: input.id, body, ttlSeconds: ttlOf(input.ttl, index), receipt: input.receipt === true };
  }

  /** Where a publish goes: exactly one of `to` (a user) and `topic`; a topic takes no `receipt`. */
  function addressOf(input: PublishInput, index?: number): { to: string } | { topic: string } {
    const field = (name: string) => (index === undefined ? `\`${name}\`` : `\`messages.${index}.${name}\``);
    if ((input.to === undefined) === (input.topic === undefined)) {
      throw new GatewayError('invalid_request', `Give exactly one of ${field('to')} (a user) and ${field('topic')}.`);
    }
    if (input.to !== undefined) return { to: input.to };
    if (typeof input.topic !== 'string' || !TOPIC_NAME_PATTERN.test(input.topic)) {
      throw new GatewayError('invalid_topic', `${field('topic')} must be 1-128 characters of A-Z a-z 0-9 . _ : -.`);
    }
    if (input.receipt !== undefined) {
      throw new GatewayError('invalid_request', `${field('receipt')}: a topic message has many readers and no receipt.`);
    }
    return { topic: input.topic };
  }

  /**
   * Refuses the whole request unless the token may write to every address in it: users through
   * its `pub` claim (or PUBLISH_DEFAULT), topics through its `topics` claim (the `publish` right).
   */
  function assertMayPublish(claims: TokenClaims, addresses: ReadonlyArray<{ to: string } | { topic: string }>, where?: (index: number, field: 'to' | 'topic') => string): void {
    const users: Array<[string, number]> = [];
    const topics: Array<[string, number]> = [];
    addresses.forEach((address, index) => {
      if ('topic' in address) topics.push([address.topic, index]);
      else users.push([address.to, index]);
    });
    publishPolicy.assertMayPublishTo(
      claims,
      users.map(([user]) => user),
      where && ((at) => where(users[at]![1], 'to')),
    );
    assertMayUseTopics(
      claims,
      topics.map(([topic]) => topic),
      'publish',
      where && ((at) => where(topics[at]![1], 'topic')),
    );
  }

  /** A publish's answer: the id, the topic's `seq` for a topic message, and whether it was a repeat. */
  function answerOf(draft: MessageDraft, result: InsertResult): { id: number; seq?: number; duplicate: boolean } {
    if (topicOfKey(draft.userId) === undefined) return { id: result.id, duplicate: result.duplicate };
    return { id: result.id, seq: result.duplicate ? result.seq : result.message.seq, duplicate: result.duplicate };
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
    assertMayPublish(ctx.state.claims, [addressOf(input)]);
    const draft = toDraft(ctx.state.userId, input);
    admitOrThrow(admission, ctx, 1);
    const result = await engine.publish(draft);
    ctx.status = result.duplicate ? 200 : 201;
    ctx.body = answerOf(draft, result);
  });

  router.post('/v1/messages/batch', async function publishBatch(ctx) {
    const limit = Math.min(limits.maxBatch * (limits.maxBytes + ENVELOPE_BYTES), 16 * 1024 * 1024);
    const input = parseOrThrow(batchSchema, await readJsonBody(ctx, limit));
    // Validate and authorize every item before storing any, so a bad or refused item never leaves
    // a half-stored batch.
    assertMayPublish(
      ctx.state.claims,
      input.messages.map((message, index) => addressOf(message, index)),
      (index, field) => `messages.${index}.${field}`,
    );
    const drafts = input.messages.map((message, index) => toDraft(ctx.state.userId, message, index));
    admitOrThrow(admission, ctx, drafts.length);
    const results = await engine.publishMany(drafts);
    ctx.status = results.every((result) => result.duplicate) ? 200 : 201;
    ctx.body = { results: results.map((result, index) => answerOf(drafts[index]!, result)) };
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
    const topic = topicOfKey(status.to);
    if (topic !== undefined) {
      // Nobody acks a topic message: it is `published` (in the topic's history) until it expires
      // or the trim takes it out of the history (stored as acked then, for its idempotency key).
      const state = status.status === 'acked' ? 'trimmed' : status.status === 'expired' ? 'expired' : 'published';
      ctx.body = { id: status.id, topic, status: state, createdAt: iso(status.createdAt), expiresAt: iso(status.expiresAt) };
      return;
    }
    ctx.body = { id: status.id, to: status.to, status: status.status, createdAt: iso(status.createdAt), ackedAt: iso(status.ackedAt), expiresAt: iso(status.expiresAt) };
  });
}
