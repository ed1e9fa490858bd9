import {
  presencePlan,
  topicPresencePlan,
  type PresenceResult,
  type TopicPresenceMember,
  type TopicPresenceResult,
  type UserPresence,
} from './core/presence-request.js';
import { resolveTransport, sendWithRetries, type GatewayRequestOptions } from './request-with-retries.js';

export type { PresenceResult, TopicPresenceMember, TopicPresenceResult, UserPresence };

/**
 * @example
 * const options: PresenceOptions = { url, token, users: ['alice', 'bob'] };
 */
export interface PresenceOptions extends GatewayRequestOptions {
  /** User ids, at least one (the gateway takes up to 100: more is a 400 `too_many_users`). */
  users: string[];
}

/**
 * Asks the gateway which of `users` are online (polling now, or within its grace), retrying
 * transient failures like `publish`. Rejects with a ClientError: `ClientHttpError` with the
 * server's code for 4xx answers (`forbidden_presence`, `too_many_users`, `invalid_user_id`, ...).
 *
 * @example
 * const { users } = await presence({ url: 'https://gateway.example.com/', token: jwt, users: ['alice', 'bob'] });
 * if (users.bob!.online) showOnline('bob');
 * else showLastSeen('bob', users.bob!.lastSeenAt);
 */
export async function presence(options: PresenceOptions): Promise<PresenceResult> {
  const transport = resolveTransport(options, 'presence');
  return sendWithRetries(transport, presencePlan(options));
}

/**
 * @example
 * const options: TopicPresenceOptions = { url, token, topic: 'room:42' };
 */
export interface TopicPresenceOptions extends GatewayRequestOptions {
  /** A topic name (`^[A-Za-z0-9._:-]{1,128}$`). */
  topic: string;
}

/**
 * Asks the gateway who reads `topic` now: how many users, and who (unless more than its
 * PRESENCE_MEMBERS_MAX), with the same retries as `publish`. Rejects with a ClientError
 * (`forbidden_topic`, `invalid_topic`, ...).
 *
 * @example
 * const { count, members } = await topicPresence({ url: 'https://gateway.example.com/', token: jwt, topic: 'room:42' });
 * showRoster(count, members?.map((member) => member.user));
 */
export async function topicPresence(options: TopicPresenceOptions): Promise<TopicPresenceResult> {
  const transport = resolveTransport(options, 'presence');
  return sendWithRetries(transport, topicPresencePlan(options));
}
