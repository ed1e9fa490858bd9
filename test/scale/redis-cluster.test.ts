import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { redisClusterCases, TEST_SECRET, type Backend } from '../support/backends.js';
import { spawnGateway, type GatewayProcess } from '../support/process.js';
import { waitFor } from './support.js';

const clusterCases = redisClusterCases('gateways on a Redis Cluster');

describe.skipIf(clusterCases.length === 0)('two gateway processes on MariaDB + a Redis Cluster (sharded pub/sub)', () => {
  let backend: Backend;
  let first: GatewayProcess;
  let second: GatewayProcess;
  let prefix: string;
  const admins: Redis[] = [];
  const issuer = createTokenIssuer({ secret: TEST_SECRET });

  beforeAll(async () => {
    backend = clusterCases[0]!.make();
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
    await backend.cleanup();
  });

  it('answers polls held on one process with messages published through the other; channels live on one shard each', async () => {
    const users = ['rc-bob', 'rc-carol', 'rc-dave', 'rc-erin', 'rc-frank', 'rc-grace'];
    const sender = await issuer.issue('rc-alice');
    const tokens = await Promise.all(users.map((user) => issuer.issue(user)));
    const started = Date.now();
    const held = tokens.map((token) => fetch(`${second.url}/v1/poll?wait=15`, { headers: { Authorization: `Bearer ${token}` } }));

    // Every held poll's channel is a shard channel on exactly one master, and nothing uses
    // classic (broadcast) pub/sub.
    const channelsByNode: string[][] = [];
    await waitFor(async () => {
      channelsByNode.length = 0;
      for (const admin of admins) channelsByNode.push((await admin.call('PUBSUB', 'SHARDCHANNELS', `${prefix}*`)) as string[]);
      return channelsByNode.flat().length === users.length;
    }, 5_000, 'every poll to be subscribed');
    expect(channelsByNode.flat().sort()).toEqual(users.map((user) => `${prefix}wake:${user}`).sort());
    expect(channelsByNode.filter((channels) => channels.length > 0).length).toBeGreaterThanOrEqual(2);
    for (const admin of admins) expect(await admin.call('PUBSUB', 'CHANNELS', `${prefix}*`)).toEqual([]);

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
    // Answered polls unsubscribe: no channel is left behind on any shard.
    await waitFor(async () => {
      let left = 0;
      for (const admin of admins) left += ((await admin.call('PUBSUB', 'SHARDCHANNELS', `${prefix}*`)) as string[]).length;
      return left === 0;
    }, 5_000, 'the channels to be unsubscribed');
  });

  it('reports the bus ready on /readyz', async () => {
    const response = await fetch(`${first.url}/readyz`);
    expect(response.status).toBe(200);
  });
});
