import { Redis } from 'ioredis';
import { allShardChannels, presenceChannel } from './channels.js';
import { PresenceListeners, presencePayload } from './presence-listeners.js';
import { WakeObservers } from './wake-observers.js';
import type { Bus } from './types.js';
import { notifyWokenUsers, resolveWakeShards, wakePayloadsByShard } from './wake-payload.js';

export interface RedisBusOptions {
  url: string;
  /** Namespaces channels, so several gateways or test suites can share one Redis. */
  prefix?: string;
  /** Number of wake shard channels (default 64). Every process on one prefix must use the same. */
  wakeShards?: number;
  /** Logs bus state changes; the bus never throws from a background event. */
  onError?: (error: unknown) => void;
}

/**
 * Redis pub/sub bus. One subscriber connection per process, subscribed once, at creation, to a
 * fixed set of shard channels; a wake publishes one message per shard naming its users, and each
 * process notifies only the users it has listeners for. Holding a poll therefore costs no Redis
 * command, where a channel per user cost a SUBSCRIBE and an UNSUBSCRIBE round trip per poll.
 *
 * ioredis re-subscribes the shard channels after a reconnect (`autoResubscribe`), and `onResync`
 * listeners run then, because wakes published while disconnected were lost.
 *
 * @example
 * const bus = await createRedisBus({ url: 'redis://127.0.0.1:6379', prefix: 'lpg:' });
 */
export async function createRedisBus(options: RedisBusOptions): Promise<Bus> {
  const prefix = options.prefix ?? 'lpg:';
  const shards = resolveWakeShards(options.wakeShards);
  const channels = allShardChannels(prefix, shards);
  const reportError = options.onError ?? (() => {});
  const retryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 2_000);
  // Publishing is best effort (the row is already stored), so it must fail fast rather than queue
  // behind a dead connection and hold up the publish response.
  const publisher = new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy,
  });
  const subscriber = new Redis(options.url, {
    lazyConnect: true,
    autoResubscribe: true,
    maxRetriesPerRequest: null,
    retryStrategy,
  });
  publisher.on('error', reportError);
  subscriber.on('error', reportError);

  const observers = new WakeObservers();
  const presence = new PresenceListeners();
  const presenceTopic = presenceChannel(prefix);
  const resyncListeners = new Set<() => void>();
  let closed = false;
  let everReady = false;

  // Shard channels and the presence channel are subscribed on this connection.
  subscriber.on('message', (channel: string, payload: string) => {
    if (channel === presenceTopic) presence.notifyPayload(payload);
    else notifyWokenUsers(observers, payload);
  });
  subscriber.on('ready', () => {
    if (everReady) for (const listener of [...resyncListeners]) listener();
    everReady = true;
  });

  try {
    await Promise.all([publisher.connect(), subscriber.connect()]);
    // Awaited here, once for the bus's lifetime: from now on an observer added needs no
    // round trip to mean "a wake published after this is seen".
    await subscriber.subscribe(...channels, presenceTopic);
  } catch (error) {
    publisher.disconnect();
    subscriber.disconnect();
    throw error;
  }

  return {
    async wake(userIds, heads) {
      const payloads = [...wakePayloadsByShard(userIds, shards, heads)];
      if (payloads.length === 0) return;
      if (payloads.length === 1) {
        const [shard, payload] = payloads[0]!;
        await publisher.publish(channels[shard]!, payload);
        return;
      }
      const pipeline = publisher.pipeline();
      for (const [shard, payload] of payloads) pipeline.publish(channels[shard]!, payload);
      const results = await pipeline.exec();
      const failure = results?.find(([error]) => error);
      if (failure) throw failure[0];
    },
    onWake(observer) {
      return observers.observe(observer);
    },
    async announcePresence(events) {
      if (events.length > 0) await publisher.publish(presenceTopic, presencePayload(events));
    },
    onPresence(listener) {
      return presence.listen(listener);
    },
    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
    get healthy() {
      return !closed && subscriber.status === 'ready' && publisher.status === 'ready';
    },
    async ping() {
      if (subscriber.status !== 'ready') throw new Error(`redis subscriber is ${subscriber.status}`);
      await publisher.ping();
    },
    async close() {
      closed = true;
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}
