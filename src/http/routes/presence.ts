import type Router from '@koa/router';
import { assertMayUseTopics } from '../../auth/topic-policy.js';
import type { TokenClaims } from '../../auth/claims.js';
import { TOPIC_NAME_PATTERN } from '../../core/model.js';
import { GatewayError } from '../../errors.js';
import type { PresenceTracker } from '../../presence/tracker.js';
import { USER_ID_PATTERN } from '../../user-id.js';
import { setNoCacheHeaders } from './poll.js';

/** Users one presence query may ask about. */
export const PRESENCE_USERS_MAX = 100;

export interface PresenceRouteOptions {
  /** PRESENCE_MEMBERS_MAX: a topic's members are listed up to this many, counted above it. */
  membersMax: number;
  /** Whether the token may publish to `userId` (its `pub` claim, or PUBLISH_DEFAULT). */
  mayPublishTo(claims: TokenClaims, userId: string): boolean;
}

const iso = (epochMs: number) => new Date(epochMs).toISOString();

/**
 * A token may see the presence of the users it may publish to (a customer: its agents), its own,
 * and anyone's with the `presence` scope (a service). Anyone else's is refused whole, naming no state.
 */
function assertMaySee(claims: TokenClaims, userIds: readonly string[], mayPublishTo: PresenceRouteOptions['mayPublishTo']): void {
  if (claims.scope.includes('presence')) return;
  const refused = userIds.find((userId) => userId !== claims.subject && !mayPublishTo(claims, userId));
  if (refused !== undefined) {
    throw new GatewayError('forbidden_presence', `This token may not see the presence of ${JSON.stringify(refused)}: only of users it may publish to, unless its scope includes \`presence\`.`);
  }
}

/**
 * GET /v1/presence?user=a&user=b: who of them is online. GET /v1/topics/{name}/presence: who reads
 * a topic. Both are one registry round trip. Without presence (PRESENCE_GRACE_S=0) both are 404.
 */
export function registerPresenceRoutes(router: Router, presence: PresenceTracker | undefined, options: PresenceRouteOptions): void {
  function tracker(): PresenceTracker {
    if (!presence) throw new GatewayError('not_found', 'Presence is off on this gateway (PRESENCE_GRACE_S=0).');
    return presence;
  }

  router.get('/v1/presence', async function usersPresence(ctx) {
    const raw = ctx.query.user;
    const userIds = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    if (userIds.length === 0) throw new GatewayError('invalid_request', 'Name at least one `user`.');
    if (userIds.length > PRESENCE_USERS_MAX) throw new GatewayError('too_many_users', `A presence query may name at most ${PRESENCE_USERS_MAX} users; this one names ${userIds.length}.`);
    const invalid = userIds.find((userId) => !USER_ID_PATTERN.test(userId));
    if (invalid !== undefined) throw new GatewayError('invalid_user_id', `${JSON.stringify(invalid)} is not a user id.`);
    assertMaySee(ctx.state.claims, userIds, options.mayPublishTo);
    const found = await tracker().users([...new Set(userIds)]);
    const users: Record<string, { online: boolean; clients?: number; lastSeenAt: string | null }> = {};
    const now = Date.now();
    for (const [userId, { clients, lastSeenAt }] of found) {
      // An online user is being seen now: a poll is held, or ended inside the grace.
      users[userId] = clients > 0 ? { online: true, clients, lastSeenAt: iso(now) } : { online: false, lastSeenAt: lastSeenAt === null ? null : iso(lastSeenAt) };
    }
    setNoCacheHeaders(ctx);
    ctx.body = { users };
  });

  router.get('/v1/topics/:name/presence', async function topicPresence(ctx) {
    const name = ctx.params.name!;
    if (!TOPIC_NAME_PATTERN.test(name)) throw new GatewayError('invalid_topic', `Topic ${JSON.stringify(name)} is not a topic name (1-128 characters of A-Z a-z 0-9 . _ : -).`);
    assertMayUseTopics(ctx.state.claims, [name], 'presence');
    const { count, members } = await tracker().topicMembers(name, options.membersMax);
    setNoCacheHeaders(ctx);
    ctx.body = members ? { count, members: members.map((member) => ({ user: member.userId, clients: member.clients, since: iso(member.since) })) } : { count };
  });
}
