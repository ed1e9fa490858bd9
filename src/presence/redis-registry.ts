import { Cluster, Redis } from 'ioredis';
import type { ClusterNode } from '../bus/redis-cluster-bus.js';
import type { Heartbeat, PresenceChange, PresenceRegistry, PresenceScope, TopicMembers, UserPresence } from './types.js';
import { topicScope } from './types.js';

/**
 * Presence in Redis, shared by every process on one prefix. All keys carry one hash tag
 * (`{<prefix>presence}`), so on a Redis Cluster they live in one slot and each batch is one Lua
 * script: one round trip, atomic, whatever it touches. Per scope (`u:<user>`, `t:<topic>`):
 *
 * - `e:<scope>` hash: `<user>\n<client>\n<process>` → since (ms): the entries;
 * - `n:<scope>` hash: user → its entries there (a user is present while it is above 0);
 *
 * and `procs` (sorted set: process → when its liveness runs out, on Redis's clock), `beats` (hash:
 * process → its last heartbeat, on Redis's clock), `p:<process>` (set: that process's entries, to
 * remove when it dies) and `seen` (hash: user → last seen).
 * Liveness and the sweep use Redis's own TIME, so gateways whose clocks disagree or step agree on
 * who is dead.
 */

const COMMON = `
local base = KEYS[1]
local procs = base .. 'procs'
local function entry_field(user, client, proc) return user .. '\\n' .. client .. '\\n' .. proc end
local function now_ms() local t = redis.call('TIME') return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end
-- Removes one entry of a process; answers true when its user then has none left in the scope.
local function remove_entry(scope, user, client, proc, last_seen)
  if redis.call('HDEL', base .. 'e:' .. scope, entry_field(user, client, proc)) == 0 then return false end
  redis.call('SREM', base .. 'p:' .. proc, scope .. '\\n' .. user .. '\\n' .. client)
  -- Every entry's end counts, not only the last one removed: processes sweep on their own
  -- timers, so the client seen last may well be removed before another one.
  if scope == 'u:' .. user then
    local previous = tonumber(redis.call('HGET', base .. 'seen', user) or '0')
    if last_seen > previous then redis.call('HSET', base .. 'seen', user, last_seen) end
  end
  local left = redis.call('HINCRBY', base .. 'n:' .. scope, user, -1)
  if left > 0 then return false end
  redis.call('HDEL', base .. 'n:' .. scope, user)
  return true
end
`;

/** ARGV: process, at, announce (0/1), then scope, user, client per entry. Answers [known, scope, user, ...joined]. */
const JOIN = `${COMMON}
local proc = ARGV[1]
if not redis.call('ZSCORE', procs, proc) then return {0} end
local at = ARGV[2]
local announce = ARGV[3] == '1'
local joined = {1}
for i = 4, #ARGV, 3 do
  local scope, user, client = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HSETNX', base .. 'e:' .. scope, entry_field(user, client, proc), at) == 1 then
    redis.call('SADD', base .. 'p:' .. proc, scope .. '\\n' .. user .. '\\n' .. client)
    if redis.call('HINCRBY', base .. 'n:' .. scope, user, 1) == 1 and not announce then
      joined[#joined + 1] = scope
      joined[#joined + 1] = user
    end
  end
end
return joined
`;

/** ARGV: process, then scope, user, client, lastSeenAt per entry. Answers [scope, user, ...left]. */
const LEAVE = `${COMMON}
local proc = ARGV[1]
local left = {}
for i = 2, #ARGV, 4 do
  local scope, user = ARGV[i], ARGV[i + 1]
  if remove_entry(scope, user, ARGV[i + 2], proc, tonumber(ARGV[i + 3])) then
    left[#left + 1] = scope
    left[#left + 1] = user
  end
end
return left
`;

/**
 * ARGV: process, ttl (ms), most dead processes to sweep. Answers [known, now, scope, user, ...left].
 * A dead process's users were last seen at its last heartbeat, kept in `beats`: its liveness minus
 * the ttl would take the sweeping process's ttl for the dead one's, and processes may differ (a
 * rolling change of the grace). A process whose last heartbeat was written before `beats` existed
 * falls back to that estimate.
 */
const HEARTBEAT = `${COMMON}
local proc = ARGV[1]
local ttl = tonumber(ARGV[2])
local now = now_ms()
local known = redis.call('ZSCORE', procs, proc) and 1 or 0
redis.call('ZADD', procs, now + ttl, proc)
redis.call('HSET', base .. 'beats', proc, now)
local answer = {known, tostring(now)}
local dead = redis.call('ZRANGEBYSCORE', procs, '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
for d = 1, #dead, 2 do
  local gone = dead[d]
  local last_seen = tonumber(redis.call('HGET', base .. 'beats', gone) or '') or tonumber(dead[d + 1]) - ttl
  for _, member in ipairs(redis.call('SMEMBERS', base .. 'p:' .. gone)) do
    local first = string.find(member, '\\n', 1, true)
    local second = string.find(member, '\\n', first + 1, true)
    local scope, user, client = string.sub(member, 1, first - 1), string.sub(member, first + 1, second - 1), string.sub(member, second + 1)
    if remove_entry(scope, user, client, gone, last_seen) then
      answer[#answer + 1] = scope
      answer[#answer + 1] = user
    end
  end
  redis.call('DEL', base .. 'p:' .. gone)
  redis.call('ZREM', procs, gone)
  redis.call('HDEL', base .. 'beats', gone)
end
return answer
`;

/** ARGV: user ids. Answers, per user, [entry fields joined by \\0, last seen or ''] . */
const USERS = `${COMMON}
local answer = {}
for i = 1, #ARGV do
  local user = ARGV[i]
  answer[#answer + 1] = table.concat(redis.call('HKEYS', base .. 'e:u:' .. user), '\\0')
  answer[#answer + 1] = redis.call('HGET', base .. 'seen', user) or ''
end
return answer
`;

/** ARGV: topic scope, most listed. Answers [count] or [count, field, since, field, since, ...]. */
const TOPIC_MEMBERS = `${COMMON}
local count = redis.call('HLEN', base .. 'n:' .. ARGV[1])
if count > tonumber(ARGV[2]) then return {count} end
local answer = {count}
for _, value in ipairs(redis.call('HGETALL', base .. 'e:' .. ARGV[1])) do answer[#answer + 1] = value end
return answer
`;

interface PresenceCommands {
  presenceJoin(base: string, ...args: Array<string | number>): Promise<Array<string | number>>;
  presenceLeave(base: string, ...args: Array<string | number>): Promise<string[]>;
  presenceHeartbeat(base: string, ...args: Array<string | number>): Promise<Array<string | number>>;
  presenceUsers(base: string, ...args: string[]): Promise<string[]>;
  presenceTopicMembers(base: string, ...args: Array<string | number>): Promise<Array<string | number>>;
}

export interface RedisPresenceRegistryOptions {
  /** One Redis (REDIS_URL) … */
  url?: string;
  /** … or a Redis Cluster's startup nodes (REDIS_CLUSTER_NODES). */
  nodes?: readonly ClusterNode[];
  /** The bus's prefix: gateways on one prefix share presence. */
  prefix?: string;
  onError?: (error: unknown) => void;
  /** Dead processes removed per heartbeat at most (default 20); the next heartbeat takes the rest. */
  sweepBatch?: number;
}

/** Pairs of (scope, user) from a script's answer, as changes. */
function changesOf(values: ReadonlyArray<string | number>, from: number, event: 'join' | 'leave', at: number): PresenceChange[] {
  const changes: PresenceChange[] = [];
  for (let index = from; index + 1 < values.length; index += 2) {
    changes.push({ scope: String(values[index]) as PresenceScope, userId: String(values[index + 1]), event, at });
  }
  return changes;
}

/** The distinct clients among entry fields (`user\nclient\nprocess`). */
function distinctClients(fields: readonly string[]): number {
  return new Set(fields.map((field) => field.split('\n')[1])).size;
}

/**
 * @example
 * const registry = await createRedisPresenceRegistry({ url: 'redis://127.0.0.1:6379', prefix: 'lpg:' });
 */
export async function createRedisPresenceRegistry(options: RedisPresenceRegistryOptions): Promise<PresenceRegistry> {
  if ((options.url === undefined) === (options.nodes === undefined)) throw new TypeError('Expected either `url` or `nodes`');
  const base = `{${options.prefix ?? 'lpg:'}presence}:`;
  const sweepBatch = options.sweepBatch ?? 20;
  const retryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 2_000);
  // Fails fast like the bus's publisher: presence is best effort, a poll never waits for Redis.
  const client =
    options.nodes !== undefined
      ? new Cluster(
          options.nodes.map(({ host, port }) => ({ host, port })),
          { lazyConnect: true, enableOfflineQueue: false, clusterRetryStrategy: retryStrategy, redisOptions: { maxRetriesPerRequest: 0 } },
        )
      : new Redis(options.url!, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy });
  client.on('error', options.onError ?? (() => {}));
  const scripts: Array<[keyof PresenceCommands, string]> = [
    ['presenceJoin', JOIN],
    ['presenceLeave', LEAVE],
    ['presenceHeartbeat', HEARTBEAT],
    ['presenceUsers', USERS],
    ['presenceTopicMembers', TOPIC_MEMBERS],
  ];
  for (const [name, lua] of scripts) client.defineCommand(name, { numberOfKeys: 1, lua });
  const commands = client as unknown as PresenceCommands;
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw error;
  }

  return {
    async join(processId, entries, at, joinOptions = {}) {
      if (entries.length === 0) return { known: true, changes: [] };
      const args: string[] = [processId, String(at), joinOptions.announce ? '1' : '0'];
      for (const entry of entries) args.push(entry.scope, entry.userId, entry.clientId);
      const answer = await commands.presenceJoin(base, ...args);
      return { known: Number(answer[0]) === 1, changes: changesOf(answer, 1, 'join', at) };
    },
    async leave(processId, entries, at) {
      if (entries.length === 0) return [];
      const args: string[] = [processId];
      for (const entry of entries) args.push(entry.scope, entry.userId, entry.clientId, String(Math.round(entry.lastSeenAt)));
      return changesOf(await commands.presenceLeave(base, ...args), 0, 'leave', at);
    },
    async heartbeat(processId, ttlMs): Promise<Heartbeat> {
      const answer = await commands.presenceHeartbeat(base, processId, Math.round(ttlMs), sweepBatch);
      return { known: Number(answer[0]) === 1, changes: changesOf(answer, 2, 'leave', Number(answer[1])) };
    },
    async users(userIds) {
      const presence = new Map<string, UserPresence>();
      if (userIds.length === 0) return presence;
      const answer = await commands.presenceUsers(base, ...userIds);
      userIds.forEach((userId, index) => {
        const fields = answer[index * 2]!;
        const seen = answer[index * 2 + 1]!;
        presence.set(userId, { clients: fields === '' ? 0 : distinctClients(fields.split('\0')), lastSeenAt: seen === '' ? null : Number(seen) });
      });
      return presence;
    },
    async topicMembers(topic, maxListed): Promise<TopicMembers> {
      const answer = await commands.presenceTopicMembers(base, topicScope(topic), maxListed);
      const count = Number(answer[0]);
      if (answer.length === 1 && count > maxListed) return { count };
      const byUser = new Map<string, { clients: Set<string>; since: number }>();
      for (let index = 1; index + 1 < answer.length; index += 2) {
        const [userId, clientId] = String(answer[index]).split('\n') as [string, string];
        const since = Number(answer[index + 1]);
        const member = byUser.get(userId);
        if (member) {
          member.clients.add(clientId);
          member.since = Math.min(member.since, since);
        } else byUser.set(userId, { clients: new Set([clientId]), since });
      }
      const members = [...byUser].map(([userId, { clients, since }]) => ({ userId, clients: clients.size, since }));
      return { count, members: members.sort((a, b) => a.since - b.since || (a.userId < b.userId ? -1 : 1)) };
    },
    async close() {
      client.disconnect();
    },
  };
}

