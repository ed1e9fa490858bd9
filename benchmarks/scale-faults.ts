/**
 * What scale-out failures cost clients, measured:
 *
 * 1. A worker of `start --workers 2` is SIGKILLed while `--polls` polls are held (one user each):
 *    how many held polls were cut, how long until the replacement worker answers, and whether every
 *    message published afterwards reaches its user (clients re-poll with their cursor after an error).
 * 2. (REDIS_CLUSTER_NODES set) The sharded subscriber connections of a Redis Cluster bus are
 *    killed on every master (CLIENT KILL): how long until the bus is healthy again and has told
 *    its held polls to re-read the store (resync).
 *
 *   npm run build && eval "$(bash scripts/services.sh up)" && eval "$(bash scripts/redis-cluster.sh up)"
 *   npx tsx benchmarks/scale-faults.ts [--polls 200] [--rounds 5]
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { createRedisClusterBus } from '../src/bus/redis-cluster-bus.js';
import { parseClusterNodes } from '../src/config.js';
import { childPids } from '../test/support/process.js';
import { percentile, requireEnv, sleep, spawnCli, withScratchDatabase } from './scale-common.js';

const { values } = parseArgs({ options: { polls: { type: 'string', default: '200' }, rounds: { type: 'string', default: '5' } } });
const pollCount = Number(values.polls);
const rounds = Number(values.rounds);
requireEnv('MYSQL_URL', 'REDIS_URL');
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });

function call(url: string, token: string | undefined, body?: unknown): Promise<{ status: number; worker?: string; text: string }> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method: payload ? 'POST' : 'GET',
        agent: false,
        headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, worker: res.headers['x-gateway-worker'] as string | undefined, text }));
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, text: error.code ?? error.message }));
    req.end(payload);
  });
}

async function workerCrash() {
  return withScratchDatabase(async (mysqlUrl, database) => {
    const gateway = await spawnCli(['--workers', '2'], {
      MYSQL_URL: mysqlUrl,
      REDIS_URL: process.env.REDIS_URL!,
      REDIS_PREFIX: `${database}:`,
      GATEWAY_JWT_SECRET: secret,
      PUBLISH_RATE_PER_USER: '0',
      PUBLISH_RATE_PER_IP: '0',
      SHUTDOWN_GRACE_MS: '3000',
    });
    try {
      const users = Array.from({ length: pollCount }, (_, i) => `crash-${i}`);
      const tokens = await Promise.all(users.map((u) => issuer.issue(u)));
      const received = new Map<string, number>();
      let cut = 0;
      let stopping = false;
      // Each client: poll, and after an error poll again at once with the same cursor (the shipped
      // client would back off first; that delay is the client's, not the gateway's).
      const clients = users.map(async (user, i) => {
        let cursor = 0;
        while (!stopping) {
          const answer = await call(`${gateway.url}/v1/poll?wait=10&cursor=${cursor}`, tokens[i]);
          if (answer.status !== 200) {
            if (!stopping) cut += 1;
            await sleep(50);
            continue;
          }
          const parsed = JSON.parse(answer.text) as { messages: unknown[]; cursor: number };
          received.set(user, (received.get(user) ?? 0) + parsed.messages.length);
          cursor = parsed.cursor;
        }
      });
      await sleep(2_000);
      const pids = childPids(gateway.child.pid!);
      const killedAt = performance.now();
      process.kill(pids[0]!, 'SIGKILL');
      let replacementMs = NaN;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
        const answer = await call(`${gateway.url}/healthz`, undefined);
        if (answer.worker === '3') {
          replacementMs = performance.now() - killedAt;
          break;
        }
        await sleep(20);
      }
      const sender = await issuer.issue('crash-sender');
      for (const [i, user] of users.entries()) {
        await call(`${gateway.url}/v1/messages`, sender, { to: user, id: `c-${i}`, body: i });
      }
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && users.some((u) => (received.get(u) ?? 0) < 1)) await sleep(50);
      stopping = true;
      const deliveredUsers = users.filter((u) => (received.get(u) ?? 0) >= 1).length;
      await gateway.stop();
      await Promise.all(clients);
      return { 'held polls': pollCount, 'polls cut by the crash': cut, 'replacement answers after ms': Math.round(replacementMs), 'messages published after': pollCount, delivered: deliveredUsers };
    } finally {
      await gateway.stop();
    }
  });
}

async function clusterSubscriberLoss() {
  const nodes = process.env.REDIS_CLUSTER_NODES!;
  const connectionName = `faults-${randomBytes(3).toString('hex')}`;
  const bus = await createRedisClusterBus({ nodes: parseClusterNodes(nodes), prefix: `${connectionName}:`, connectionName });
  const admins = parseClusterNodes(nodes).map((node) => new Redis(node));
  const samples: number[] = [];
  try {
    const offs = Array.from({ length: 50 }, () => bus.onWake(() => {}));
    for (let round = 0; round < rounds; round += 1) {
      let resynced = false;
      const off = bus.onResync(() => (resynced = true));
      const killedAt = performance.now();
      for (const admin of admins) {
        const list = (await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
        for (const line of list.split('\n')) {
          const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
          if (id && line.includes(`ssubscriber):${connectionName}`)) await admin.call('CLIENT', 'KILL', 'ID', id);
        }
      }
      while (!(resynced && bus.healthy)) {
        if (performance.now() - killedAt > 30_000) throw new Error('no resync within 30 s');
        await sleep(5);
      }
      samples.push(performance.now() - killedAt);
      off();
      await sleep(500);
    }
    offs.forEach((off) => off());
  } finally {
    admins.forEach((admin) => admin.disconnect());
    await bus.close();
  }
  samples.sort((a, b) => a - b);
  return { rounds, 'wake observers': 50, 'kill → healthy + resync, median ms': Math.round(percentile(samples, 0.5)), 'max ms': Math.round(samples.at(-1)!) };
}

const crash = await workerCrash();
console.table([crash]);
const cluster = process.env.REDIS_CLUSTER_NODES ? await clusterSubscriberLoss() : undefined;
if (cluster) console.table([cluster]);
else console.warn('REDIS_CLUSTER_NODES not set: the Redis Cluster part is skipped');
console.log(JSON.stringify({ benchmark: 'scale-faults', date: new Date().toISOString(), crash, cluster }));
