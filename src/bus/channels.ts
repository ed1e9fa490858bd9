/**
 * All channel naming lives here, so the Redis buses and any tool that publishes agree.
 *
 * Wakes travel on a fixed set of shard channels, not one channel per user: each process subscribes
 * to all of them once, when its bus is created, so holding a poll costs no Redis command. A wake
 * names its users in the payload and every process filters locally (see wake-payload.ts).
 *
 * On a Redis Cluster the whole channel name is hashed to pick the slot (and so the master) of a
 * shard channel: the shards spread over all masters. The name must never contain a `{hash tag}`,
 * which would pin every shard to one slot and one master; REDIS_PREFIX cannot contain braces
 * (it is validated), so it does not.
 */

/** Enough that one shard's payload stays small and one busy user's wakes do not crowd the others. */
export const DEFAULT_WAKE_SHARDS = 64;
/** More shards only add idle subscriptions; 1,024 spreads well even over a large cluster. */
export const MAX_WAKE_SHARDS = 1_024;

/**
 * The shard of a user: FNV-1a (32-bit) over the id's UTF-16 code units, modulo `shards`. User ids
 * are ASCII (USER_ID_PATTERN), so that is FNV-1a over its bytes, which any other tool can compute.
 * Every process must use the same `shards`, or a wake is published where nobody listens.
 */
export function shardOf(userId: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i += 1) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % shards;
}

/** Differs from the old per-user `<prefix>wake:<user>` names, so old and new processes never mix payloads. */
export function shardChannel(prefix: string, shard: number): string {
  return `${prefix}wake-shard:${shard}`;
}

export function allShardChannels(prefix: string, shards: number): string[] {
  return Array.from({ length: shards }, (_, shard) => shardChannel(prefix, shard));
}

/** Topic presence events (joins and leaves) for every process: one channel, few messages. */
export function presenceChannel(prefix: string): string {
  return `${prefix}presence`;
}
