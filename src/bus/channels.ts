/**
 * All channel naming lives here, so the Redis buses and any tool that publishes agree.
 *
 * On a Redis Cluster the whole name is hashed to pick the slot (and so the shard) of a user's
 * sharded channel: users spread over all masters. The name must never contain a `{hash tag}`,
 * which would pin every channel to one slot and one shard; REDIS_PREFIX and user ids cannot
 * contain braces (both are validated), so it does not.
 */
export function userChannel(prefix: string, userId: string): string {
  return `${prefix}wake:${userId}`;
}

export function userFromChannel(prefix: string, channel: string): string | undefined {
  const head = `${prefix}wake:`;
  return channel.startsWith(head) ? channel.slice(head.length) : undefined;
}
