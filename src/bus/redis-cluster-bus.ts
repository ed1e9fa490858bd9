import { Cluster } from 'ioredis';
import { allShardChannels, presenceChannel } from './channels.js';
import { PresenceListeners, presencePayload } from './presence-listeners.js';
import { WakeObservers } from './wake-observers.js';
import type { Bus } from './types.js';
import { notifyWokenUsers, resolveWakeShards, wakePayloadsByShard } from './wake-payload.js';

export interface ClusterNode {
  host: string;
  port: number;
}

export interface RedisClusterBusOptions {
  /** Startup nodes; the rest of the cluster is discovered from them (CLUSTER SLOTS). */
  nodes: readonly ClusterNode[];
  /** Namespaces channels, so several gateways or test suites can share one cluster. */
  prefix?: string;
  /** Number of wake shard channels (default 64). Every process on one prefix must use the same. */
  wakeShards?: number;
  /** Shown in CLIENT LIST on every node (`ioredis-cluster(ssubscriber):<name>`), for operators. */
  connectionName?: string;
  /** Logs bus state changes; the bus never throws from a background event. */
  onError?: (error: unknown) => void;
  /** How often a failed re-subscription after a reconnect is tried again. */
  resubscribeRetryMs?: number;
}

/**
 * Redis Cluster bus on sharded pub/sub (SSUBSCRIBE / SPUBLISH, Redis >= 7). Each process
 * subscribes once, at creation, to a fixed set of wake shard channels and filters wakes locally,
 * so holding a poll costs no Redis command. Each shard channel hashes to one slot, so a wake goes
 * to the master that owns it instead of being broadcast over the cluster bus to every node, as
 * classic PUBLISH is. ioredis's `shardedSubscribers` keeps one subscriber connection per master
 * and routes each SSUBSCRIBE to the owner of its slot.
 *
 * After a subscriber connection is lost or the slots move, ioredis reconnects and re-subscribes
 * in the background without waiting for the server's answers. This bus then subscribes every
 * shard channel once more and waits for those answers (commands on one connection run in order,
 * so that also covers ioredis's own re-subscription) before it reports healthy again and tells
 * `onResync` listeners to re-read the store: a wake published before that may have been lost.
 *
 * @example
 * const bus = await createRedisClusterBus({ nodes: [{ host: '127.0.0.1', port: 7001 }], prefix: 'lpg:' });
 */
export async function createRedisClusterBus(options: RedisClusterBusOptions): Promise<Bus> {
  if (options.nodes.length === 0) throw new TypeError('Expected `nodes` to list at least one cluster node');
  const prefix = options.prefix ?? 'lpg:';
  const shards = resolveWakeShards(options.wakeShards);
  const presenceTopic = presenceChannel(prefix);
  // Presence rides on one more sharded channel, subscribed and re-subscribed with the wake shards.
  const channels = [...allShardChannels(prefix, shards), presenceTopic];
  const reportError = options.onError ?? (() => {});
  const resubscribeRetryMs = options.resubscribeRetryMs ?? 1_000;
  const nodes = options.nodes.map(({ host, port }) => ({ host, port }));
  const clusterRetryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 2_000);
  const redisOptions = options.connectionName ? { connectionName: options.connectionName } : {};

  // Publishing is best effort (the row is already stored), so it fails fast instead of queueing
  // behind a dead cluster and holding up the publish response. Auto-pipelining batches the
  // SPUBLISHes of a wake that spans several shards per node.
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

  const observers = new WakeObservers();
  const presence = new PresenceListeners();
  const resyncListeners = new Set<() => void>();
  let closed = false;
  let connected = false;
  /** True from a lost subscriber connection until every shard channel is confirmed subscribed again. */
  let resubscribing = false;
  let resubscription: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  // Shard channels and the presence channel are subscribed on these connections.
  subscriber.on('smessage', (channel: string, payload: string) => {
    if (channel === presenceTopic) presence.notifyPayload(payload);
    else notifyWokenUsers(observers, payload);
  });

  /** SSUBSCRIBEs every shard channel and waits for all the answers; rejects with the first failure. */
  async function subscribeAllShards(): Promise<void> {
    // One command per channel: ioredis refuses an SSUBSCRIBE whose channels lie in different slots.
    const results = await Promise.allSettled(channels.map((channel) => subscriber.ssubscribe(channel)));
    const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /** Resolves true when every shard channel is confirmed subscribed. */
  async function confirmSubscriptions(): Promise<boolean> {
    try {
      await subscribeAllShards();
      return true;
    } catch (error) {
      reportError(error);
      return false;
    }
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
    // Awaited here, once for the bus's lifetime: from now on an observer added needs no
    // round trip to mean "a wake published after this is seen" (while healthy).
    await subscribeAllShards();
  } catch (error) {
    publisher.disconnect();
    subscriber.disconnect();
    throw error;
  }
  connected = true;

  return {
    async wake(userIds, heads) {
      const payloads = [...wakePayloadsByShard(userIds, shards, heads)];
      // Shard channels hash to different slots, so they cannot share one explicit pipeline;
      // auto-pipelining still sends the commands bound for each node together.
      const results = await Promise.allSettled(payloads.map(([shard, payload]) => publisher.spublish(channels[shard]!, payload)));
      const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failure) throw failure.reason;
    },
    onWake(observer) {
      return observers.observe(observer);
    },
    async announcePresence(events) {
      if (events.length > 0) await publisher.spublish(presenceTopic, presencePayload(events));
    },
    onPresence(listener) {
      return presence.listen(listener);
    },
    onResync(listener) {
      resyncListeners.add(listener);
      return () => resyncListeners.delete(listener);
    },
    get healthy() {
      return !closed && !resubscribing && subscriber.status === 'ready' && publisher.status === 'ready';
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

