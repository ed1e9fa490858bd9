/**
 * The presence look-ups, for both builds: who of some users is online (`GET v1/presence`) and who
 * reads a topic (`GET v1/topics/{name}/presence`). Users and topic names are checked before
 * anything is sent; sending and retrying are the shells' part, as for publish.
 */
import { requireUserId } from './publish-request.js';
import { readJson, type RequestPlan } from './request-plan.js';
import { isPosition, requireTopicName } from './topics.js';
import { invalid, isArray, isObject } from './validate.js';

/**
 * One user's presence, as `presence` answers it.
 *
 * @example
 * const bob: UserPresence = { online: false, lastSeenAt: '2026-11-27T10:00:00.000Z' };
 */
export interface UserPresence {
  online: boolean;
  /** Its pollers present now (distinct client ids); given when online. */
  clients?: number;
  /** ISO timestamp of when the user was last seen; null when never. */
  lastSeenAt: string | null;
}

/**
 * @example
 * const { users }: PresenceResult = await presence({ url, token, users: ['alice', 'bob'] });
 * if (users.alice?.online) showOnline('alice');
 */
export interface PresenceResult {
  /** One entry per user asked for. */
  users: { [user: string]: UserPresence };
}

/**
 * A user reading a topic, as `topicPresence` lists it.
 *
 * @example
 * const member: TopicPresenceMember = { user: 'alice', clients: 2, since: '2026-11-27T10:00:00.000Z' };
 */
export interface TopicPresenceMember {
  user: string;
  /** Its pollers reading the topic. */
  clients: number;
  /** ISO timestamp of when it joined (its first poller still there). */
  since: string;
}

/**
 * @example
 * const { count, members }: TopicPresenceResult = await topicPresence({ url, token, topic: 'room:1' });
 */
export interface TopicPresenceResult {
  /** Users present in the topic. */
  count: number;
  /** Absent when `count` is above the gateway's PRESENCE_MEMBERS_MAX. */
  members?: TopicPresenceMember[];
}

/** `GET v1/presence?user=…&user=…` for 1 or more users (the gateway takes up to 100). */
export function presencePlan(options: { users: unknown }): RequestPlan<PresenceResult> {
  const users = options.users;
  if (!isArray(users) || users.length === 0) throw invalid('users', 'a non-empty array of user ids', users);
  let path = 'v1/presence';
  for (let index = 0; index < users.length; index++) {
    path += (index ? '&' : '?') + 'user=' + encodeURIComponent(requireUserId('users[' + index + ']', users[index]));
  }
  return {
    path: path,
    // The answer as the gateway gave it, once it has what the API promises.
    read: readJson(function (body) {
      return isObject(body.users) && !isArray(body.users) ? (body as unknown as PresenceResult) : undefined;
    }, '`users` in the presence response to be an object'),
  };
}

/** `GET v1/topics/{name}/presence`. */
export function topicPresencePlan(options: { topic: unknown }): RequestPlan<TopicPresenceResult> {
  return {
    path: 'v1/topics/' + encodeURIComponent(requireTopicName('topic', options.topic)) + '/presence',
    read: readJson(function (body) {
      return isPosition(body.count) && (body.members === undefined || isArray(body.members)) ? (body as unknown as TopicPresenceResult) : undefined;
    }, 'a whole `count` (and an array `members`) in the topic presence response'),
  };
}
