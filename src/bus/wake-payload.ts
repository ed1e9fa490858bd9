import { DEFAULT_WAKE_SHARDS, MAX_WAKE_SHARDS, shardOf } from './channels.js';
import type { ListenerRegistry } from './listener-registry.js';

/**
 * The wire format shared by the Redis buses: one message per shard channel, its payload the ids of
 * the woken users of that shard joined by '\n'. A newline cannot occur in a user id: every id that
 * reaches the engine matched USER_ID_PATTERN (src/auth/tokens.ts, also behind userIdSchema in
 * src/http/validation.ts), which allows only 1-128 of A-Z a-z 0-9 . _ : @ -.
 */
const SEPARATOR = '\n';

/** Shard → payload; each user once per shard, so a duplicated id does not wake its polls twice. */
export function wakePayloadsByShard(userIds: readonly string[], shards: number): Map<number, string> {
  const usersByShard = new Map<number, Set<string>>();
  for (const userId of userIds) {
    // Cheap insurance for embedders that call the engine with unchecked ids: a newline would
    // silently wake two wrong users instead of the right one.
    if (userId.includes(SEPARATOR)) throw new TypeError(`Expected a user id without a newline, got ${JSON.stringify(userId)}`);
    const shard = shardOf(userId, shards);
    let users = usersByShard.get(shard);
    if (!users) usersByShard.set(shard, (users = new Set()));
    users.add(userId);
  }
  const payloads = new Map<number, string>();
  for (const [shard, users] of usersByShard) payloads.set(shard, [...users].join(SEPARATOR));
  return payloads;
}

/** Runs the local listeners of every user a shard message names; the other users are not ours. */
export function notifyWokenUsers(registry: ListenerRegistry, payload: string): void {
  for (const userId of payload.split(SEPARATOR)) registry.notify(userId);
}

/** Validates the `wakeShards` bus option up front; every process must use the same value. */
export function resolveWakeShards(wakeShards: number | undefined): number {
  const shards = wakeShards ?? DEFAULT_WAKE_SHARDS;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_WAKE_SHARDS) {
    throw new TypeError(`Expected \`wakeShards\` to be an integer between 1 and ${MAX_WAKE_SHARDS}, got ${shards}`);
  }
  return shards;
}
