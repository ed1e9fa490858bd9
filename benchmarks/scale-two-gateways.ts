/**
 * Publish → delivery latency across two gateway processes that share MariaDB + Redis (publish
 * through A, poll on B) against one process (publish and poll on A), in one run so the ratio is
 * measured under the same machine load. With REDIS_CLUSTER_NODES set, the same again on the
 * Redis Cluster bus (sharded pub/sub).
 *
 *   npm run build && eval "$(bash scripts/services.sh up)" && eval "$(bash scripts/redis-cluster.sh up)"
 *   npx tsx benchmarks/scale-two-gateways.ts [--rounds 300]
 *
 * Each round holds one poll (wait=10), waits until the polling process reports it held (/metrics)
 * plus 5 ms (its first store read), publishes one message over HTTP, and times from the start
 * of the publish request to the poll's response. Rounds alternate between the two set-ups.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { percentile, requireEnv, sleep, spawnCli, withScratchDatabase } from './scale-common.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '300' } } });
const rounds = Number(values.rounds);
requireEnv('MYSQL_URL', 'REDIS_URL');
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

function request(url: string, token: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method: payload ? 'POST' : 'GET',
        agent,
        headers: { Authorization: `Bearer ${token}`, ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls held by one gateway process, from its own /metrics (every process hears every wake shard). */
async function heldPolls(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^lpg_held_polls (\d+)/m.exec(text)?.[1] ?? 0);
}

async function runBus(name: string, busEnv: Record<string, string>) {
  return withScratchDatabase(async (mysqlUrl, database) => {
    const prefix = `${database}:`;
    const env = { MYSQL_URL: mysqlUrl, ...busEnv, REDIS_PREFIX: prefix, GATEWAY_JWT_SECRET: secret, GATEWAY_WORKERS: '1', PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' };
    const a = await spawnCli([], env);
    const b = await spawnCli([], env);
    const sender = await issuer.issue('lat-sender');
    const samples: Record<'single' | 'cross', number[]> = { single: [], cross: [] };
    const cursors: Record<'single' | 'cross', number> = { single: 0, cross: 0 };
    try {
      for (let round = 0; round < rounds * 2; round += 1) {
        const mode = round % 2 === 0 ? 'single' : 'cross';
        const user = `lat-${mode}`;
        const token = await issuer.issue(user);
        const pollOn = mode === 'single' ? a : b;
        const held = request(`${pollOn.url}/v1/poll?wait=10&cursor=${cursors[mode]}`, token);
        const until = Date.now() + 5_000;
        while ((await heldPolls(pollOn.url)) === 0) {
          if (Date.now() > until) throw new Error('poll never held');
          await sleep(1);
        }
        await sleep(5);
        const started = performance.now();
        const published = await request(`${a.url}/v1/messages`, sender, { to: user, id: `${mode}-${round}`, body: { round } });
        if (published.status !== 201) throw new Error(`publish: ${published.status} ${published.text}`);
        const answer = await held;
        const elapsed = performance.now() - started;
        const parsed = JSON.parse(answer.text) as { messages: unknown[]; cursor: number };
        if (parsed.messages.length !== 1) throw new Error(`round ${round}: ${answer.text}`);
        cursors[mode] = parsed.cursor;
        if (round >= 20) samples[mode].push(elapsed); // the first rounds warm up JIT and pools
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    return (['single', 'cross'] as const).map((mode) => {
      const sorted = samples[mode].sort((x, y) => x - y);
      return {
        bus: name,
        setup: mode === 'single' ? 'one process (publish + poll on A)' : 'two processes (publish on A, poll on B)',
        rounds: sorted.length,
        p50ms: +percentile(sorted, 0.5).toFixed(2),
        p95ms: +percentile(sorted, 0.95).toFixed(2),
        p99ms: +percentile(sorted, 0.99).toFixed(2),
        maxMs: +sorted.at(-1)!.toFixed(2),
      };
    });
  });
}

const results = [];
results.push(...(await runBus('Redis', { REDIS_URL: process.env.REDIS_URL! })));
if (process.env.REDIS_CLUSTER_NODES) {
  results.push(...(await runBus('Redis Cluster (sharded)', { REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES })));
} else {
  console.warn('REDIS_CLUSTER_NODES not set: the Redis Cluster variant is skipped');
}
agent.destroy();
console.table(results);
for (const bus of new Set(results.map((r) => r.bus))) {
  const [single, cross] = results.filter((r) => r.bus === bus);
  console.log(`${bus}: cross-process p99 / single-process p99 = ${(cross!.p99ms / single!.p99ms).toFixed(2)}`);
}
console.log(JSON.stringify({ benchmark: 'scale-two-gateways', date: new Date().toISOString(), rounds, results }));
