import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { allShardChannels, DEFAULT_WAKE_SHARDS, presenceChannel } from '../../src/bus/channels.js';
import { redisClusterCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { spawnGateway, type GatewayProcess } from '../support/process.js';
import { waitFor } from '../cluster/support.js';

const clusterCases = redisClusterCases('gateways on a Redis Cluster');

describe.skipIf(clusterCases.length === 0)('two gateway processes on MariaDB + a Redis Cluster (sharded pub/sub)', () => {
  const backend = useBackend(() => clusterCases[0]!.make());
  let first: GatewayProcess;
  let second: GatewayProcess;
  let prefix: string;
  const admins: Redis[] = [];
  const issuer = createTokenIssuer({ secret: TEST_SECRET });

  beforeAll(async () => {
    const env = await backend.gatewayEnv();
    prefix = env.REDIS_PREFIX!;
    [first, second] = await Promise.all([spawnGateway(env), spawnGateway(env)]);
    for (const node of env.REDIS_CLUSTER_NODES!.split(',')) {
      const [host, port] = node.split(':');
      admins.push(new Redis({ host: host!, port: Number(port) }));
    }
  });
  afterAll(async () => {
    admins.forEach((admin) => admin.disconnect());
    await Promise.all([first?.stop(), second?.stop()]);
  });

  /** Subscribers of each wake shard channel, over all masters; also checks that channels spread over every master. */
  async function shardSubscribers(): Promise<Map<string, number>> {
    const subscribers = new Map<string, number>();
    for (const admin of admins) {
      const channels = (await admin.call('PUBSUB', 'SHARDCHANNELS', `${prefix}*`)) as string[];
      expect(channels.length).toBeGreaterThan(0);
      const counts = (await admin.call('PUBSUB', 'SHARDNUMSUB', ...channels)) as Array<string | number>;
      for (let i = 0; i < counts.length; i += 2) subscribers.set(String(counts[i]), Number(counts[i + 1]));
    }
    return subscribers;
  }

  it('answers polls held on one process with messages published through the other; holding a poll subscribes nothing', async () => {
    const users = ['rc-bob', 'rc-carol', 'rc-dave', 'rc-erin', 'rc-frank', 'rc-grace'];
    const sender = await issuer.issue('rc-alice');
    const tokens = await Promise.all(users.map((user) => issuer.issue(user)));
    // Each gateway subscribed every wake shard channel once at startup, on the master owning its
    // slot; nothing uses classic (broadcast) pub/sub.
    const everyShardTwice = new Map([...allShardChannels(prefix, DEFAULT_WAKE_SHARDS), presenceChannel(prefix)].map((channel) => [channel, 2]));
    expect(await shardSubscribers()).toEqual(everyShardTwice);
    for (const admin of admins) expect(await admin.call('PUBSUB', 'CHANNELS', `${prefix}*`)).toEqual([]);

    const started = Date.now();
    const held = tokens.map((token) => fetch(`${second.url}/v1/poll?wait=15`, { headers: { Authorization: `Bearer ${token}` } }));
    await waitFor(async () => {
      const metrics = await (await fetch(`${second.url}/metrics`)).text();
      return new RegExp(`^lpg_held_polls ${users.length}$`, 'm').test(metrics);
    }, 5_000, 'every poll to be held');

    for (const [i, user] of users.entries()) {
      const published = await fetch(`${first.url}/v1/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${sender}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: user, id: `rc-${i}`, body: { n: i } }),
      });
      expect(published.status).toBe(201);
    }
    for (const [i, response] of (await Promise.all(held)).entries()) {
      expect(response.status).toBe(200);
      const { messages } = (await response.json()) as { messages: Array<{ from: string; body: unknown }> };
      expect(messages).toEqual([expect.objectContaining({ from: 'rc-alice', body: { n: i } })]);
    }
    // Well inside the 15 s wait: the wake-ups, not the timeouts, answered the polls.
    expect(Date.now() - started).toBeLessThan(8_000);
    // Holding and answering polls neither added nor removed a subscription.
    expect(await shardSubscribers()).toEqual(everyShardTwice);
  });

  it('wakes topic polls held on one process with a topic publish through the other, once, subscribing nothing more', async () => {
    const topics = ['rc-room:a', 'rc-room:b', 'rc-room:c'].map((name) => `${name}-${Date.now().toString(36)}`);
    const writer = await issuer.issue('rc-writer', { topics: { 'rc-room:*': ['publish'] } });
    const readers = await Promise.all(topics.map((_, i) => issuer.issue(`rc-reader-${i}`, { topics: { 'rc-room:*': ['read'] } })));
    const everyShardTwice = new Map([...allShardChannels(prefix, DEFAULT_WAKE_SHARDS), presenceChannel(prefix)].map((channel) => [channel, 2]));
    type TopicAnswer = { messages: Array<{ from: string; topic?: string; seq?: number; body: unknown }>; positions?: Record<string, number> };

    const started = Date.now();
    const held = topics.map((topic, i) => fetch(`${second.url}/v1/poll?wait=15&topic=${topic}@0`, { headers: { Authorization: `Bearer ${readers[i]}` } }));
    await waitFor(async () => /^lpg_held_polls 3$/m.test(await (await fetch(`${second.url}/metrics`)).text()), 5_000, 'every topic poll to be held');
    for (const [i, topic] of topics.entries()) {
      const published = await fetch(`${first.url}/v1/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${writer}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ topic, id: `rc-topic-${i}`, body: { n: i } }),
      });
      expect(published.status).toBe(201);
    }
    for (const [i, response] of (await Promise.all(held)).entries()) {
      expect(response.status).toBe(200);
      const answer = (await response.json()) as TopicAnswer;
      expect(answer.messages).toEqual([expect.objectContaining({ from: 'rc-writer', topic: topics[i], seq: 1, body: { n: i } })]);
      expect(answer.positions).toEqual({ [topics[i]!]: 1 });
    }
    // Well inside the 15 s wait: the topics' wakes crossed the cluster.
    expect(Date.now() - started).toBeLessThan(8_000);
    // Once: nothing more after the position, on either process.
    for (const gateway of [first, second]) {
      const after = (await (await fetch(`${gateway.url}/v1/poll?wait=1&topic=${topics[0]}@1`, { headers: { Authorization: `Bearer ${readers[0]}` } })).json()) as TopicAnswer;
      expect(after).toEqual({ messages: [], cursor: 0, positions: { [topics[0]!]: 1 } });
    }
    // A topic's readers, like a mailbox's, cost no subscription.
    expect(await shardSubscribers()).toEqual(everyShardTwice);
  });

  it('reports the bus ready on /readyz', async () => {
    const response = await fetch(`${first.url}/readyz`);
    expect(response.status).toBe(200);
  });
});
