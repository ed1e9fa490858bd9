import { DEFAULT_WAKE_SHARDS, MAX_WAKE_SHARDS, shardOf } from './channels.js';
import type { WakeObservers } from './wake-observers.js';

/**
 * The wire format shared by the Redis buses: one message per shard channel, its payload one line
 * per woken user of that shard, lines joined by '\n': the user id, then, when the publisher said,
 * a space and the mailbox head (the highest sequence number it committed). A newline cannot occur in a user id: every id that
 * reaches the engine matched USER_ID_PATTERN (src/auth/tokens.ts, also behind userIdSchema in
 * src/http/validation.ts), which allows only 1-128 of A-Z a-z 0-9 . _ : @ - (no newline, no space).
 */
const SEPARATOR = '\n';
const HEAD_SEPARATOR = ' ';

/** Shard → payload; each user once per shard (with the highest head given), so a duplicated id does not wake its polls twice. */
export function wakePayloadsByShard(userIds: readonly string[], shards: number, heads?: ReadonlyMap<string, number>): Map<number, string> {
  const usersByShard = new Map<number, Set<string>>();
  for (const userId of userIds) {
    // Cheap insurance for embedders that call the engine with unchecked ids: a newline or a space
    // would silently wake the wrong users instead of the right one.
    if (userId.includes(SEPARATOR) || userId.includes(HEAD_SEPARATOR)) {
      throw new TypeError(`Expected a user id without a newline or space, got ${JSON.stringify(userId)}`);
    }
    const shard = shardOf(userId, shards);
    let users = usersByShard.get(shard);
    if (!users) usersByShard.set(shard, (users = new Set()));
    users.add(userId);
  }
  const payloads = new Map<number, string>();
  for (const [shard, users] of usersByShard) {
    const lines = [...users].map((userId) => {
      const head = heads?.get(userId);
      return head === undefined ? userId : `${userId}${HEAD_SEPARATOR}${head}`;
    });
    payloads.set(shard, lines.join(SEPARATOR));
  }
  return payloads;
}

/** Tells the observers of every user a shard message names; only users with polls here act on it. */
export function notifyWokenUsers(observers: WakeObservers, payload: string): void {
  for (const line of payload.split(SEPARATOR)) {
    const space = line.indexOf(HEAD_SEPARATOR);
    if (space === -1) {
      observers.notify(line);
      continue;
    }
    const head = Number(line.slice(space + 1));
    observers.notify(line.slice(0, space), Number.isSafeInteger(head) ? head : undefined);
  }
}

/** Validates the `wakeShards` bus option up front; every process must use the same value. */
export function resolveWakeShards(wakeShards: number | undefined): number {
  const shards = wakeShards ?? DEFAULT_WAKE_SHARDS;
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_WAKE_SHARDS) {
    throw new TypeError(`Expected \`wakeShards\` to be an integer between 1 and ${MAX_WAKE_SHARDS}, got ${shards}`);
  }
  return shards;
}
