import { Cluster } from 'ioredis';
import { userChannel, userFromChannel } from './channels.js';
import { ListenerRegistry } from './listener-registry.js';
import { createRefCountedSubscriptions } from './ref-counted-subscriptions.js';
import type { Bus } from './types.js';

export interface ClusterNode {
  host: string;
  port: number;
}

export interface RedisClusterBusOptions {
  /** Startup nodes; the rest of the cluster is discovered from them (CLUSTER SLOTS). */
  nodes: readonly ClusterNode[];
  /** Namespaces channels, so several gateways or test suites can share one cluster. */
  prefix?: string;
  /** Shown in CLIENT LIST on every node (`ioredis-cluster(ssubscriber):<name>`), for operators. */
  connectionName?: string;
  /** Logs bus state changes; the bus never throws from a background event. */
  onError?: (error: unknown) => void;
  /** How often a failed re-subscription after a reconnect is tried again. */
  resubscribeRetryMs?: number;
}

/**
 * Redis Cluster bus on sharded pub/sub (SSUBSCRIBE / SPUBLISH, Redis >= 7). A user's channel
 * hashes to one slot, so a wake goes to the one shard that owns it instead of being broadcast over
 * the cluster bus to every node, as classic PUBLISH is. ioredis's `shardedSubscribers` keeps one
 * subscriber connection per master and routes each SSUBSCRIBE to the owner of its slot.
 *
 * After a subscriber connection is lost or the slots move, ioredis reconnects and re-subscribes
 * in the background without waiting for the server's answers. This bus then subscribes every
 * channel it needs once more and waits for those answers (commands on one connection run in
 * order, so that also covers ioredis's own re-subscription) before it reports healthy again and
 * tells `onResync` listeners to re-read the store: a wake published before that may have been lost.
 *
 * @example
 * const bus = await createRedisClusterBus({ nodes: [{ host: '127.0.0.1', port: 7001 }], prefix: 'lpg:' });
 */
export async function createRedisClusterBus(options: RedisClusterBusOptions): Promise<Bus> {
  if (options.nodes.length === 0) throw new TypeError('Expected `nodes` to list at least one cluster node');
  const prefix = options.prefix ?? 'lpg:';
  const reportError = options.onError ?? (() => {});
  const resubscribeRetryMs = options.resubscribeRetryMs ?? 1_000;
  const nodes = options.nodes.map(({ host, port }) => ({ host, port }));
  const clusterRetryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 2_000);
  const redisOptions = options.connectionName ? { connectionName: options.connectionName } : {};

  // Publishing is best effort (the row is already stored), so it fails fast instead of queueing
  // behind a dead cluster and holding up the publish response. Auto-pipelining batches the
  // SPUBLISHes of a multi-recipient publish per node.
  const publisher = new Cluster(nodes, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy,
    redisOptions: { ...redisOptions, maxRetriesPerRequest: 0 },
  });
  const subscriber = new Cluster(nodes, {
    lazyConnect: true,
    shardedSubscribers: true,
    clusterRetryStrategy,
    redisOptions,
  });
  publisher.on('error', reportError);
  subscriber.on('error', reportError);
  subscriber.on('node error', reportError);

  const registry = new ListenerRegistry();
  const resyncListeners = new Set<() => void>();
  let closed = false;
  let connected = false;
  /** True from a lost subscriber connection until every channel is confirmed subscribed again. */
  let resubscribing = false;
  let resubscription: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  subscriber.on('smessage', (channel: string) => {
    const userId = userFromChannel(prefix, channel);
    if (userId !== undefined) registry.notify(userId);
  });

  /** Subscribes every needed channel and waits for the answers; resolves true when all succeeded. */
  async function confirmSubscriptions(): Promise<boolean> {
    const users = [...registry.users()];
    const results = await Promise.allSettled(users.map((userId) => subscriber.ssubscribe(userChannel(prefix, userId))));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) reportError(failure.reason);
    return failure === undefined;
  }

  /** Bumped by every loss or re-subscription request: a confirmation counts only if none came during it. */
  let generation = 0;

  function resubscribeAll(): void {
    if (closed || !connected) return;
    resubscribing = true;
    generation += 1;
    clearTimeout(retryTimer);
    retryTimer = undefined;
    // One confirmation at a time; the running one sees the new generation and goes again.
    if (resubscription) return;
    resubscription = (async () => {
      for (;;) {
        const started = generation;
        const confirmed = subscriber.status === 'ready' && (await confirmSubscriptions());
        if (closed) return;
        if (!confirmed) {
          retryTimer ??= setTimeout(resubscribeAll, resubscribeRetryMs);
          return;
        }
        if (generation === started) break;
      }
      resubscribing = false;
      for (const listener of [...resyncListeners]) listener();
    })().finally(() => {
      resubscription = undefined;
    });
  }

  // A sharded subscriber connection ended (ioredis emits '-node' with the node key for those) or
  // was replaced: wakes may be lost from now until it is back and re-subscribed.
  function subscriberLost(): void {
    if (!connected || closed) return;
    resubscribing = true;
    generation += 1;
    // ioredis normally follows with 'subscribersReady'; if it does not, try on our own.
    if (!resubscription && !retryTimer) retryTimer = setTimeout(resubscribeAll, resubscribeRetryMs);
  }
  subscriber.on('-node', (_redis: unknown, nodeKey?: string) => {
    if (nodeKey !== undefined) subscriberLost();
  });
  subscriber.on('-subscriber', subscriberLost);
  // Emitted after ioredis (re)created subscribers for a new slot map and re-sent SSUBSCRIBEs;
  // 'ready' after the whole cluster client reconnected.
  subscriber.on('subscribersReady', resubscribeAll);
  subscriber.on('ready', resubscribeAll);

  try {
    await Promise.all([publisher.connect(), subscriber.connect()]);
  } catch (error) {
    publisher.disconnect();
    subscriber.disconnect();
    throw error;
  }
  connected = true;

  const subscribe = createRefCountedSubscriptions(registry, {
    // Each user's SSUBSCRIBE and SUNSUBSCRIBE go to the one shard connection that owns its slot.
    subscribe: (userId) => subscriber.ssubscribe(userChannel(prefix, userId)),
    unsubscribe: (userId) => subscriber.sunsubscribe(userChannel(prefix, userId)),
    canAwaitSubscribe: () => subscriber.status === 'ready' && !resubscribing,
    isClosed: () => closed,
    reportError,
  });

  return {
    subscribe,
    async wake(userIds) {
      if (userIds.length === 0) return;
      // Channels of different users hash to different slots, so they cannot share one pipeline;
      // auto-pipelining still sends the commands bound for each node together.
      const results = await Promise.allSettled(userIds.map((userId) => publisher.spublish(userChannel(prefix, userId), '1')));
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
    },
    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
    get healthy() {
      return !closed && !resubscribing && subscriber.status === 'ready' && publisher.status === 'ready';
    },
    get subscribedUsers() {
      return registry.userCount;
    },
    async ping() {
      if (subscriber.status !== 'ready') throw new Error(`redis cluster subscriber is ${subscriber.status}`);
      if (resubscribing) throw new Error('redis cluster subscriber is re-subscribing');
      await publisher.ping();
    },
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}

