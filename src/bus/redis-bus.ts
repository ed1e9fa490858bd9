import { Redis } from 'ioredis';
import { userChannel, userFromChannel } from './channels.js';
import { ListenerRegistry } from './listener-registry.js';
import { createRefCountedSubscriptions } from './ref-counted-subscriptions.js';
import type { Bus } from './types.js';

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

  const subscribe = createRefCountedSubscriptions(registry, {
    subscribe: (userId) => subscriber.subscribe(userChannel(prefix, userId)),
    unsubscribe: (userId) => subscriber.unsubscribe(userChannel(prefix, userId)),
    // ioredis queues a SUBSCRIBE sent while disconnected and sends it on reconnect.
    canAwaitSubscribe: () => subscriber.status === 'ready',
    isClosed: () => closed,
    reportError,
  });

  return {
    subscribe,
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
