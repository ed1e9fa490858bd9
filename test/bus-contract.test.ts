import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../src/bus/types.js';
import { backendCases, redisClusterCases, uniqueName, type Backend } from './support/backends.js';
import { waitFor } from './support/wait.js';

/** Subscribes, and resolves `woken` on the first wake; `ready` resolves when subscribe did. */
function nextWake(bus: Bus, userId: string): { ready: Promise<unknown>; woken: Promise<void> } {
  let markWoken!: () => void;
  const woken = new Promise<void>((resolve) => (markWoken = resolve));
  const ready = bus.subscribe(userId, () => markWoken());
  return { ready, woken: woken.then(async () => (await ready as () => void)()) };
}


describe.each([...backendCases('bus contract'), ...redisClusterCases('bus contract')])('Bus contract on $name', ({ make }) => {
  let backend: Backend;
  let bus: Bus;

  beforeAll(async () => {
    backend = make();
    bus = await backend.createBus();
  });
  afterAll(async () => {
    await backend.cleanup();
  });

  it('delivers a wake published after subscribe resolved', async () => {
    let woken = 0;
    const unsubscribe = await bus.subscribe('alice', () => {
      woken += 1;
    });
    await bus.wake(['alice']);
    await waitFor(() => woken === 1);
    unsubscribe();
  });

  it('wakes only the named users', async () => {
    const woken: string[] = [];
    const offs = await Promise.all(['u1', 'u2', 'u3'].map((u) => bus.subscribe(u, () => woken.push(u))));
    await bus.wake(['u1', 'u3']);
    await waitFor(() => woken.length === 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(woken.sort()).toEqual(['u1', 'u3']);
    offs.forEach((off) => off());
  });

  it('reference-counts subscriptions per user and stops waking after the last unsubscribe', async () => {
    const before = bus.subscribedUsers;
    let woken = 0;
    const first = await bus.subscribe('carol', () => (woken += 1));
    const second = await bus.subscribe('carol', () => (woken += 1));
    expect(bus.subscribedUsers).toBe(before + 1);
    first();
    first(); // idempotent
    expect(bus.subscribedUsers).toBe(before + 1);
    await bus.wake(['carol']);
    await waitFor(() => woken === 1);
    second();
    expect(bus.subscribedUsers).toBe(before);
    await bus.wake(['carol']);
    await new Promise((r) => setTimeout(r, 100));
    expect(woken).toBe(1);
  });

  it('survives subscribe → unsubscribe → subscribe of one user in quick succession', async () => {
    const off1 = await bus.subscribe('dave', () => {});
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

const redisCases = backendCases('Redis reconnect').filter((c) => c.name === 'mysql+redis');

describe.skipIf(redisCases.length === 0)('Redis bus reconnect', () => {
  let backend: Backend;
  let bus: Bus;
  let admin: Redis;

  beforeAll(async () => {
    backend = redisCases[0]!.make();
    bus = await backend.createBus();
    admin = new Redis(process.env.REDIS_URL!);
  });
  afterAll(async () => {
    admin.disconnect();
    await backend.cleanup();
  });

  it('re-subscribes after the subscriber connection is killed and signals a resync', async () => {
    let woken = 0;
    let resyncs = 0;
    bus.onResync(() => (resyncs += 1));
    const unsubscribe = await bus.subscribe('erin', () => (woken += 1));
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
  let backend: Backend;
  let bus: Bus;
  const nodes = (process.env.REDIS_CLUSTER_NODES ?? '').split(',').filter(Boolean);
  const admins: Redis[] = [];
  const prefix = `${uniqueName('tc')}:`;
  const connectionName = uniqueName('contract');

  beforeAll(async () => {
    backend = clusterCases[0]!.make();
    // Its own connection name, so killing its connections leaves other suites on the cluster alone.
    const { createRedisClusterBus } = await import('../src/bus/redis-cluster-bus.js');
    const { parseClusterNodes } = await import('../src/config.js');
    bus = await createRedisClusterBus({ nodes: parseClusterNodes(nodes.join(',')), prefix, connectionName });
    for (const node of nodes) {
      const [host, port] = node.split(':');
      admins.push(new Redis({ host: host!, port: Number(port) }));
    }
  });
  afterAll(async () => {
    await bus?.close();
    admins.forEach((admin) => admin.disconnect());
    await backend.cleanup();
  });

  it('spreads per-user channels over the shards, each subscribed only on the master owning its slot', async () => {
    const users = Array.from({ length: 24 }, (_, i) => `spread-${i}`);
    const offs = await Promise.all(users.map((u) => bus.subscribe(u, () => {})));
    const shardsWithChannels: number[] = [];
    let seen = 0;
    for (const admin of admins) {
      const channels = (await admin.call('PUBSUB', 'SHARDCHANNELS', `${prefix}*`)) as string[];
      seen += channels.length;
      if (channels.length > 0) shardsWithChannels.push(channels.length);
      const slots = (await admin.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, string]]>;
      const myId = (await admin.call('CLUSTER', 'MYID')) as string;
      const owned = slots.filter((range) => range[2][2] === myId);
      for (const channel of channels) {
        const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', channel));
        expect(owned.some(([from, to]) => slot >= from && slot <= to)).toBe(true);
      }
    }
    expect(seen).toBe(users.length);
    expect(shardsWithChannels.length).toBeGreaterThanOrEqual(2);
    offs.forEach((off) => off());
  });

  it('re-subscribes after its shard subscriber connections are killed, signals a resync, and wakes again', async () => {
    let woken = 0;
    let resyncs = 0;
    const offResync = bus.onResync(() => (resyncs += 1));
    const users = ['kill-a', 'kill-b', 'kill-c', 'kill-d', 'kill-e', 'kill-f'];
    const offs = await Promise.all(users.map((u) => bus.subscribe(u, () => (woken += 1))));
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
    // Healthy again means every channel was confirmed subscribed: one wake each gets through.
    await bus.wake(users);
    await waitFor(() => woken >= users.length, 5_000);
    expect(woken).toBe(users.length);
    offs.forEach((off) => off());
    offResync();
  });
});
