import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allShardChannels, DEFAULT_WAKE_SHARDS, shardOf, presenceChannel } from '../../src/bus/channels.js';
import type { Bus, Unsubscribe } from '../../src/bus/types.js';
import { backendCases, mysqlRedisCases, redisClusterCases, uniqueName, useBackend } from '../support/backends.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * The wakes of one user, from the bus's one observer API (the engine's way: one observer for all
 * its held polls). Async like the engine's start, so a test awaits it before waking.
 */
async function listen(bus: Bus, userId: string, listener: () => void): Promise<Unsubscribe> {
  return bus.onWake((woken) => {
    if (woken === userId) listener();
  });
}

/** Listens, and resolves `woken` on the first wake; `ready` resolves when listening started. */
function nextWake(bus: Bus, userId: string): { ready: Promise<unknown>; woken: Promise<void> } {
  let markWoken!: () => void;
  const woken = new Promise<void>((resolve) => (markWoken = resolve));
  const ready = listen(bus, userId, () => markWoken());
  return { ready, woken: woken.then(async () => (await ready as () => void)()) };
}

/** Counts calls per user, so a test can tell "woken once" from "woken twice" and "not woken". */
function wakeCounter(): { listener: (userId: string) => () => void; count: (userId: string) => number; total: () => number } {
  const counts = new Map<string, number>();
  return {
    listener: (userId) => () => counts.set(userId, (counts.get(userId) ?? 0) + 1),
    count: (userId) => counts.get(userId) ?? 0,
    total: () => [...counts.values()].reduce((sum, n) => sum + n, 0),
  };
}

/** A user id other than `userId` that falls on the same wake shard (with the default shard count). */
function shardNeighbour(userId: string): string {
  for (let i = 0; ; i += 1) {
    const candidate = `${userId}-nb${i}`;
    if (shardOf(candidate, DEFAULT_WAKE_SHARDS) === shardOf(userId, DEFAULT_WAKE_SHARDS)) return candidate;
  }
}

describe.each([...backendCases('bus contract'), ...redisClusterCases('bus contract')])('Bus contract on $name', ({ make }) => {
  const backend = useBackend(make);
  let bus: Bus;

  beforeAll(async () => {
    bus = await backend.createBus();
  });

  it('sends topic presence events to every listener of every process on its prefix, as they were given', async () => {
    const prefix = `${uniqueName('pr')}:`;
    const [one, other] = backend.real ? [await backend.createBus(prefix), await backend.createBus(prefix)] : [bus, bus];
    const heard: Array<{ on: string; events: unknown }> = [];
    const stops = [one.onPresence!((events) => heard.push({ on: 'one', events })), other.onPresence!((events) => heard.push({ on: 'other', events }))];
    const events = [
      { topic: 'room:1', user: 'alice', event: 'join' as const, at: 1_700_000_000_000 },
      { topic: 'room:2', user: 'bob', event: 'leave' as const, at: 1_700_000_000_001 },
    ];
    await one.announcePresence!(events);
    await waitFor(() => heard.length === 2);
    await sleep(50);
    expect([...heard].sort((a, b) => a.on.localeCompare(b.on))).toEqual([
      { on: 'one', events },
      { on: 'other', events },
    ]);
    // A listener removed hears nothing more; wakes are not presence events and vice versa.
    stops[1]!();
    let wakes = 0;
    const stopWakes = other.onWake(() => (wakes += 1));
    await one.announcePresence!(events.slice(0, 1));
    await waitFor(() => heard.length === 3);
    await sleep(50);
    expect(heard.slice(2)).toEqual([{ on: 'one', events: events.slice(0, 1) }]);
    expect(wakes).toBe(0);
    stops[0]!();
    stopWakes();
  });

  it('delivers a wake published after an observer was added', async () => {
    let woken = 0;
    const unsubscribe = await listen(bus, 'alice', () => {
      woken += 1;
    });
    await bus.wake(['alice']);
    await waitFor(() => woken === 1);
    unsubscribe();
  });

  it('tells every observer of every wake, with the head it carries, in the order the observers were added', async () => {
    const seen: Array<[string, number | undefined]> = [];
    const order: string[] = [];
    const stopObserving = bus.onWake((userId, head) => {
      seen.push([userId, head]);
      order.push(`observer:${userId}`);
    });
    const unsubscribe = await listen(bus, 'head-b', () => order.push('listener:head-b'));
    await bus.wake(['head-a', 'head-b', 'head-c'], new Map([['head-a', 7], ['head-b', 12]]));
    await waitFor(() => seen.length === 3 && order.includes('listener:head-b'));
    expect(seen.sort()).toEqual([
      ['head-a', 7],
      ['head-b', 12],
      ['head-c', undefined],
    ]);
    expect(order.indexOf('observer:head-b')).toBeLessThan(order.indexOf('listener:head-b'));
    stopObserving();
    unsubscribe();
    await bus.wake(['head-a'], new Map([['head-a', 8]]));
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toHaveLength(3);
  });

  it('wakes only the named users', async () => {
    const woken: string[] = [];
    const offs = await Promise.all(['u1', 'u2', 'u3'].map((u) => listen(bus, u, () => woken.push(u))));
    await bus.wake(['u1', 'u3']);
    await waitFor(() => woken.length === 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(woken.sort()).toEqual(['u1', 'u3']);
    offs.forEach((off) => off());
  });

  it('wakes exactly the named users across many shards, not the other users of the same shards', async () => {
    const named = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    const neighbours = named.map(shardNeighbour);
    expect(new Set(named.map((u) => shardOf(u, DEFAULT_WAKE_SHARDS))).size).toBeGreaterThanOrEqual(20);
    const counter = wakeCounter();
    const offs = await Promise.all([...named, ...neighbours].map((u) => listen(bus, u, counter.listener(u))));
    await bus.wake(named);
    await waitFor(() => counter.total() >= named.length);
    await sleep(100);
    for (const user of named) expect(counter.count(user), user).toBe(1);
    for (const user of neighbours) expect(counter.count(user), user).toBe(0);
    offs.forEach((off) => off());
  });

  it('does not call a listener added after a wake was delivered for that wake', async () => {
    const counter = wakeCounter();
    const early = await listen(bus, 'late', counter.listener('early'));
    await bus.wake(['late']);
    await waitFor(() => counter.count('early') === 1);
    const late = await listen(bus, 'late', counter.listener('late'));
    await sleep(100);
    expect(counter.count('late')).toBe(0);
    await bus.wake(['late']);
    await waitFor(() => counter.count('late') === 1);
    expect(counter.count('early')).toBe(2);
    early();
    late();
  });

  it('stops notifying a listener once unsubscribed, while other listeners of the user and its shard still hear', async () => {
    const counter = wakeCounter();
    const neighbour = shardNeighbour('frank');
    const gone = await listen(bus, 'frank', counter.listener('gone'));
    const stays = await listen(bus, 'frank', counter.listener('stays'));
    const other = await listen(bus, neighbour, counter.listener(neighbour));
    gone();
    await bus.wake(['frank', neighbour]);
    await waitFor(() => counter.count('stays') === 1 && counter.count(neighbour) === 1);
    await sleep(50);
    expect(counter.count('gone')).toBe(0);
    stays();
    other();
  });

  it('stops telling an observer once removed (removing twice is harmless) and stops waking after the last', async () => {
    let woken = 0;
    const first = await listen(bus, 'carol', () => (woken += 1));
    const second = await listen(bus, 'carol', () => (woken += 1));
    first();
    first(); // idempotent
    await bus.wake(['carol']);
    await waitFor(() => woken === 1);
    second();
    await bus.wake(['carol']);
    await new Promise((r) => setTimeout(r, 100));
    expect(woken).toBe(1);
  });

  it('survives observe → remove → observe of one user in quick succession', async () => {
    const off1 = await listen(bus, 'dave', () => {});
    off1();
    const { ready, woken } = nextWake(bus, 'dave');
    await ready;
    await bus.wake(['dave']);
    await expect(woken).resolves.toBeUndefined();
  });

  it('answers ping and reports healthy', async () => {
    await expect(bus.ping()).resolves.toBeUndefined();
    expect(bus.healthy).toBe(true);
  });
});

/**
 * Counts the commands naming `prefix` (a channel argument) that the given nodes execute. MONITOR
 * rather than INFO commandstats: the counters are server-wide, and parallel suites share these
 * servers, while the prefix is this file's alone.
 */
async function monitorPrefixedCommands(nodes: Redis[], prefix: string) {
  const counts = new Map<string, number>();
  const monitors = await Promise.all(nodes.map((node) => node.monitor()));
  for (const monitor of monitors) {
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (!args.slice(1).some((arg) => arg.startsWith(prefix))) return;
      const name = args[0]!.toLowerCase();
      counts.set(name, (counts.get(name) ?? 0) + 1);
    });
  }
  return {
    count: (name: string) => counts.get(name) ?? 0,
    stop: () => monitors.forEach((monitor) => monitor.disconnect()),
  };
}

function adminsFor(kind: 'redis' | 'cluster'): Redis[] {
  if (kind === 'redis') return [new Redis(process.env.REDIS_URL!)];
  return (process.env.REDIS_CLUSTER_NODES ?? '').split(',').filter(Boolean).map((node) => {
    const [host, port] = node.split(':');
    return new Redis({ host: host!, port: Number(port) });
  });
}

const realBusCases = [
  ...mysqlRedisCases('Redis wake shards').map((c) => ({ ...c, kind: 'redis' as const, commands: { subscribe: 'subscribe', unsubscribe: 'unsubscribe', publish: 'publish' } })),
  ...redisClusterCases('Redis Cluster wake shards').map((c) => ({
    ...c,
    kind: 'cluster' as const,
    commands: { subscribe: 'ssubscribe', unsubscribe: 'sunsubscribe', publish: 'spublish' },
  })),
];

describe.each(realBusCases)('wake shards on $name', ({ make, kind, commands }) => {
  const backend = useBackend(make);
  let bus: Bus;
  let admins: Redis[];
  const prefix = `${uniqueName('ws')}:`;
  const shardChannels = allShardChannels(prefix, DEFAULT_WAKE_SHARDS);

  beforeAll(async () => {
    bus = await backend.createBus(prefix);
    admins = adminsFor(kind);
  });
  afterAll(async () => {
    admins.forEach((admin) => admin.disconnect());
  });

  it('has every shard channel and the presence channel subscribed exactly once from creation, and nothing else', async () => {
    const subscribed: string[] = [];
    for (const admin of admins) {
      const [listCommand, countCommand] = kind === 'redis' ? ['CHANNELS', 'NUMSUB'] : ['SHARDCHANNELS', 'SHARDNUMSUB'];
      const channels = (await admin.call('PUBSUB', listCommand, `${prefix}*`)) as string[];
      subscribed.push(...channels);
      if (channels.length === 0) continue;
      const counts = (await admin.call('PUBSUB', countCommand, ...channels)) as Array<string | number>;
      for (let i = 1; i < counts.length; i += 2) expect(Number(counts[i]), String(counts[i - 1])).toBe(1);
    }
    expect(subscribed.sort()).toEqual([...shardChannels, presenceChannel(prefix)].sort());
  });

  it('sends no Redis command for 1,000 observe/remove cycles, and one publish per shard for a wake of 100 users', async () => {
    const monitor = await monitorPrefixedCommands(admins, prefix);
    try {
      for (let i = 0; i < 1_000; i += 1) {
        const off = await listen(bus, `cycle-${i % 10}`, () => {});
        off();
      }
      const users = Array.from({ length: 100 }, (_, i) => `fan-${i}`);
      const shards = new Set(users.map((u) => shardOf(u, DEFAULT_WAKE_SHARDS))).size;
      const counter = wakeCounter();
      const offs = await Promise.all(users.map((u) => listen(bus, u, counter.listener(u))));
      await bus.wake(users);
      await waitFor(() => counter.total() === users.length && monitor.count(commands.publish) >= shards);
      await sleep(100);
      expect(monitor.count(commands.publish)).toBe(shards);
      expect(shards).toBeLessThanOrEqual(DEFAULT_WAKE_SHARDS);
      expect(monitor.count(commands.subscribe)).toBe(0);
      expect(monitor.count(commands.unsubscribe)).toBe(0);
      for (const user of users) expect(counter.count(user), user).toBe(1);
      offs.forEach((off) => off());
    } finally {
      monitor.stop();
    }
  });
});

const redisCases = mysqlRedisCases('Redis reconnect');

describe.skipIf(redisCases.length === 0)('Redis bus reconnect', () => {
  const backend = useBackend(() => redisCases[0]!.make());
  let bus: Bus;
  let admin: Redis;

  beforeAll(async () => {
    bus = await backend.createBus();
    admin = new Redis(process.env.REDIS_URL!);
  });
  afterAll(async () => {
    admin.disconnect();
  });

  it('re-subscribes after the subscriber connection is killed and signals a resync', async () => {
    let woken = 0;
    let resyncs = 0;
    bus.onResync(() => (resyncs += 1));
    const unsubscribe = await listen(bus, 'erin', () => (woken += 1));
    const killed = await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    expect(Number(killed)).toBeGreaterThanOrEqual(1);
    await waitFor(() => resyncs === 1 && bus.healthy, 5_000);
    // After the resync the channel is subscribed again: a wake gets through.
    await waitFor(() => {
      void bus.wake(['erin']).catch(() => {});
      return woken > 0;
    }, 5_000);
    expect(woken).toBeGreaterThan(0);
    unsubscribe();
  });
});

const clusterCases = redisClusterCases('Redis Cluster reconnect');

describe.skipIf(clusterCases.length === 0)('Redis Cluster bus: sharded pub/sub', () => {
  let bus: Bus;
  const nodes = (process.env.REDIS_CLUSTER_NODES ?? '').split(',').filter(Boolean);
  const admins: Redis[] = [];
  const prefix = `${uniqueName('tc')}:`;
  const connectionName = uniqueName('contract');

  beforeAll(async () => {
    // Its own connection name, so killing its connections leaves other suites on the cluster alone.
    const { createRedisClusterBus } = await import('../../src/bus/redis-cluster-bus.js');
    const { parseClusterNodes } = await import('../../src/config.js');
    bus = await createRedisClusterBus({ nodes: parseClusterNodes(nodes.join(',')), prefix, connectionName });
    for (const node of nodes) {
      const [host, port] = node.split(':');
      admins.push(new Redis({ host: host!, port: Number(port) }));
    }
  });
  afterAll(async () => {
    await bus?.close();
    admins.forEach((admin) => admin.disconnect());
  });

  /** Shard channels subscribed per node, in node order. */
  async function shardChannelsByNode(): Promise<string[][]> {
    return Promise.all(admins.map(async (admin) => (await admin.call('PUBSUB', 'SHARDCHANNELS', `${prefix}*`)) as string[]));
  }

  it('spreads the wake shard channels over every master, each subscribed only on the master owning its slot', async () => {
    const channelsByNode = await shardChannelsByNode();
    for (const [i, admin] of admins.entries()) {
      const slots = (await admin.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
      const myId = (await admin.call('CLUSTER', 'MYID')) as string;
      const owned = slots.filter((range) => range[2][2] === myId);
      for (const channel of channelsByNode[i]!) {
        const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', channel));
        expect(owned.some(([from, to]) => slot >= from && slot <= to)).toBe(true);
      }
      // No {hash tag} pins them to one slot: every master of the test cluster carries some.
      expect(channelsByNode[i]!.length, `shard channels on ${nodes[i]}`).toBeGreaterThan(0);
    }
    expect(channelsByNode.flat().sort()).toEqual([...allShardChannels(prefix, DEFAULT_WAKE_SHARDS), presenceChannel(prefix)].sort());
    for (const admin of admins) expect(await admin.call('PUBSUB', 'CHANNELS', `${prefix}*`)).toEqual([]);
  });

  it('re-subscribes after its shard subscriber connections are killed, signals a resync, and wakes again', async () => {
    let woken = 0;
    let resyncs = 0;
    const offResync = bus.onResync(() => (resyncs += 1));
    const users = ['kill-a', 'kill-b', 'kill-c', 'kill-d', 'kill-e', 'kill-f'];
    const offs = await Promise.all(users.map((u) => listen(bus, u, () => (woken += 1))));
    let killed = 0;
    for (const admin of admins) {
      const clients = (await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
      for (const line of clients.split('\n')) {
        const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
        if (id && line.includes(`name=ioredis-cluster(ssubscriber):${connectionName}`)) {
          killed += Number(await admin.call('CLIENT', 'KILL', 'ID', id));
        }
      }
    }
    expect(killed).toBeGreaterThanOrEqual(2);
    await waitFor(() => resyncs >= 1 && bus.healthy, 10_000);
    // Healthy again means every shard channel was confirmed subscribed: one wake each gets through.
    await bus.wake(users);
    await waitFor(() => woken >= users.length, 5_000);
    await sleep(50);
    expect(woken).toBe(users.length);
    expect((await shardChannelsByNode()).flat().sort()).toEqual([...allShardChannels(prefix, DEFAULT_WAKE_SHARDS), presenceChannel(prefix)].sort());
    offs.forEach((off) => off());
    offResync();
  });
});
