import { Redis } from 'ioredis';
import { userChannel, userFromChannel } from './channels.js';
import { ListenerRegistry } from './listener-registry.js';
import type { Bus, Unsubscribe, WakeListener } from './types.js';

export interface RedisBusOptions {
  url: string;
  /** Namespaces channels, so several gateways or test suites can share one Redis. */
  prefix?: string;
  /** Logs bus state changes; the bus never throws from a background event. */
  onError?: (error: unknown) => void;
}

/**
 * Redis pub/sub bus. One subscriber connection per process, one channel per user while that user
 * has listeners; ioredis re-subscribes those channels after a reconnect (`autoResubscribe`), and
 * `onResync` listeners run then, because wakes published while disconnected were lost.
 *
 * @example
 * const bus = await createRedisBus({ url: 'redis://127.0.0.1:6379', prefix: 'lpg:' });
 */
export async function createRedisBus(options: RedisBusOptions): Promise<Bus> {
  const prefix = options.prefix ?? 'lpg:';
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

  const registry = new ListenerRegistry();
  const subscriptionByUser = new Map<string, Promise<void>>();
  const resyncListeners = new Set<() => void>();
  let closed = false;
  let everReady = false;

  subscriber.on('message', (channel: string) => {
    const userId = userFromChannel(prefix, channel);
    if (userId !== undefined) registry.notify(userId);
  });
  subscriber.on('ready', () => {
    if (everReady) for (const listener of [...resyncListeners]) listener();
    everReady = true;
  });

  await Promise.all([publisher.connect(), subscriber.connect()]);

  return {
    async subscribe(userId: string, listener: WakeListener): Promise<Unsubscribe> {
      const { first } = registry.add(userId, listener);
      let active = true;
      const unsubscribe = () => {
        if (!active) return;
        active = false;
        if (registry.remove(userId, listener).last && !closed) {
          subscriptionByUser.delete(userId);
          subscriber.unsubscribe(userChannel(prefix, userId)).catch(reportError);
        }
      };
      // Commands on one connection run in order, so SUBSCRIBE → UNSUBSCRIBE → SUBSCRIBE for the
      // same user ends subscribed. Later listeners await the first one's SUBSCRIBE, which makes
      // "resolved" mean "the server has the subscription" for everyone.
      let subscribed = subscriptionByUser.get(userId);
      if (first || !subscribed) {
        subscribed = subscriber.subscribe(userChannel(prefix, userId)).then(
          () => undefined,
          (error: unknown) => reportError(error),
        );
        subscriptionByUser.set(userId, subscribed);
      }
      // While Redis is down don't hold the poll hostage: the engine falls back to timed re-reads,
      // and ioredis sends the queued SUBSCRIBE once it reconnects.
      if (subscriber.status === 'ready') await subscribed;
      return unsubscribe;
    },
    async wake(userIds) {
      if (userIds.length === 0) return;
      if (userIds.length === 1) {
        await publisher.publish(userChannel(prefix, userIds[0]!), '1');
        return;
      }
      const pipeline = publisher.pipeline();
      for (const userId of userIds) pipeline.publish(userChannel(prefix, userId), '1');
      const results = await pipeline.exec();
      const failure = results?.find(([error]) => error);
      if (failure) throw failure[0];
    },
    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
    get healthy() {
      return !closed && subscriber.status === 'ready' && publisher.status === 'ready';
    },
    get subscribedUsers() {
      return registry.userCount;
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
