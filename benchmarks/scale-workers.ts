/**
 * `start --workers 1` against `--workers N` (default: one per core) on MariaDB + Redis:
 *
 * 1. Delivered messages per second: `--users` closed-loop long pollers (each acks with its cursor
 *    and polls again) and `--publishers` closed-loop publishers (one message per request, to a
 *    random user) for `--seconds`, after a warm-up. Counted: messages received by pollers within
 *    the window, publish → receipt latency, CPU seconds of the gateway (primary + workers).
 * 2. Held polls: `--held` polls opened at once (one user each, wait=60), how many are held, the
 *    time to open them and the RSS of all gateway processes.
 *
 * Everything, the load generator included, shares this machine's cores with MariaDB and Redis, so
 * a second worker competes with them for CPU: read the ratio with the CPU columns.
 *
 *   npm run build && eval "$(bash scripts/services.sh up)"
 *   npx tsx benchmarks/scale-workers.ts [--workers 1,2] [--seconds 30] [--users 400] [--publishers 32] [--held 10000]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { cpuSecondsOfTree, percentile, requireEnv, rssMiBOfTree, sleep, spawnCli, withScratchDatabase } from './scale-common.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: `1,${availableParallelism()}` },
    seconds: { type: 'string', default: '30' },
    users: { type: 'string', default: '400' },
    publishers: { type: 'string', default: '32' },
    held: { type: 'string', default: '10000' },
  },
});
const workerCounts = values.workers.split(',').map(Number);
const seconds = Number(values.seconds);
const userCount = Number(values.users);
const publisherCount = Number(values.publishers);
const heldCount = Number(values.held);
requireEnv('MYSQL_URL', 'REDIS_URL');
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });

function call(agent: http.Agent, url: string, token: string, body?: unknown, timeoutMs = 90_000): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      url,
      {
        method: payload ? 'POST' : 'GET',
        agent,
        timeout: timeoutMs,
        headers: { Authorization: `Bearer ${token}`, ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, text: error.code ?? error.message }));
    req.end(payload);
  });
}

/** The local MariaDB and Redis daemons, whose CPU time shows where the cores went. */
function serverPids(): number[] {
  const listenerOf = (port: string) => {
    try {
      const line = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
      return [...line.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1])).slice(0, 1);
    } catch {
      return [];
    }
  };
  return [...listenerOf(new URL(process.env.MYSQL_URL!).port || '3306'), ...listenerOf(new URL(process.env.REDIS_URL!).port || '6379')];
}

async function throughput(workers: number) {
  return withScratchDatabase(async (mysqlUrl, database) => {
    const gateway = await spawnCli(['--workers', String(workers)], {
      MYSQL_URL: mysqlUrl,
      REDIS_URL: process.env.REDIS_URL!,
      REDIS_PREFIX: `${database}:`,
      GATEWAY_JWT_SECRET: secret,
      PUBLISH_RATE_PER_USER: '0',
      PUBLISH_RATE_PER_IP: '0',
      MAX_HELD_POLLS: '100000',
      // Every poller is one user with one poll; per-worker pools sized so N workers together
      // open about as many MySQL connections as one.
      MYSQL_POOL_MAX: String(Math.max(10, Math.round(40 / workers))),
      SHUTDOWN_GRACE_MS: '3000',
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    const pid = gateway.child.pid!;
    let measuring = false;
    let stopping = false;
    let delivered = 0;
    let published = 0;
    let errors = 0;
    const latencies: number[] = [];

    const users = Array.from({ length: userCount }, (_, i) => `tp-${i}`);
    const tokens = await Promise.all(users.map((u) => issuer.issue(u)));
    const pollers = tokens.map(async (token) => {
      let cursor = 0;
      while (!stopping) {
        const answer = await call(agent, `${gateway.url}/v1/poll?wait=5&cursor=${cursor}&limit=500`, token);
        if (answer.status !== 200) {
          errors += 1;
          await sleep(100);
          continue;
        }
        const { messages, cursor: next } = JSON.parse(answer.text) as { messages: Array<{ body: { t: number } }>; cursor: number };
        cursor = next;
        if (!measuring) continue;
        const now = Date.now();
        delivered += messages.length;
        for (const message of messages) latencies.push(now - message.body.t);
      }
    });
    const sender = await issuer.issue('tp-sender');
    let sequence = 0;
    const publishers = Array.from({ length: publisherCount }, async () => {
      while (!stopping) {
        const to = users[Math.floor(Math.random() * users.length)]!;
        const answer = await call(agent, `${gateway.url}/v1/messages`, sender, { to, id: `p-${(sequence += 1)}`, body: { t: Date.now() } });
        if (answer.status === 201) {
          if (measuring) published += 1;
        } else {
          errors += 1;
          await sleep(100);
        }
      }
    });

    await sleep(5_000); // warm-up: JIT, pools, every poller held
    const servers = serverPids();
    const cpuBefore = cpuSecondsOfTree(pid);
    const serversBefore = servers.map(cpuSecondsOfTree);
    const selfBefore = process.cpuUsage();
    const started = performance.now();
    measuring = true;
    await sleep(seconds * 1000);
    measuring = false;
    const elapsed = (performance.now() - started) / 1000;
    const cpu = cpuSecondsOfTree(pid) - cpuBefore;
    const serversCpu = servers.map((server, i) => cpuSecondsOfTree(server) - serversBefore[i]!);
    const self = process.cpuUsage(selfBefore);
    const loadAverage = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    const rss = rssMiBOfTree(pid);
    stopping = true;
    await Promise.all(publishers);
    await gateway.stop();
    await Promise.all(pollers);
    agent.destroy();
    latencies.sort((a, b) => a - b);
    return {
      workers,
      seconds: +elapsed.toFixed(1),
      'published/s': Math.round(published / elapsed),
      'delivered/s': Math.round(delivered / elapsed),
      p50ms: percentile(latencies, 0.5),
      p99ms: percentile(latencies, 0.99),
      errors,
      'gateway CPU s/s': +(cpu / elapsed).toFixed(2),
      'MariaDB + Redis CPU s/s': +(serversCpu.reduce((a, b) => a + b, 0) / elapsed).toFixed(2),
      'load generator CPU s/s': +((self.user + self.system) / 1e6 / elapsed).toFixed(2),
      'msgs per gateway CPU s': Math.round(delivered / Math.max(0.001, cpu)),
      'load avg (1 min)': loadAverage,
      'gateway RSS MiB': Math.round(rss),
    };
  });
}

async function heldPolls(workers: number) {
  return withScratchDatabase(async (mysqlUrl, database) => {
    const gateway = await spawnCli(['--workers', String(workers)], {
      MYSQL_URL: mysqlUrl,
      REDIS_URL: process.env.REDIS_URL!,
      REDIS_PREFIX: `${database}:`,
      GATEWAY_JWT_SECRET: secret,
      POLL_WAIT_MAX_S: '120',
      MAX_HELD_POLLS: '100000',
      SHUTDOWN_GRACE_MS: '5000',
    });
    const pid = gateway.child.pid!;
    await sleep(1_000);
    const idleRss = rssMiBOfTree(pid);
    const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
    const tokens = await Promise.all(Array.from({ length: heldCount }, (_, i) => issuer.issue(`held-${i}`)));
    const started = performance.now();
    let answeredEarly = 0;
    const polls = tokens.map(async (token) => {
      const answer = await call(agent, `${gateway.url}/v1/poll?wait=60`, token, undefined, 120_000);
      if (!stopping) answeredEarly += 1;
      return answer.status === 0 ? answer.text : String(answer.status);
    });
    let stopping = false;
    // Held = subscribed on the bus: every held poll of these one-poll users has its channel in Redis.
    const redis = new Redis(process.env.REDIS_URL!);
    const subscribed = async () => ((await redis.call('PUBSUB', 'CHANNELS', `${database}:*`)) as string[]).length;
    const deadline = Date.now() + Math.max(20_000, heldCount * 3);
    let held = 0;
    while (Date.now() < deadline && (held = await subscribed()) < heldCount - answeredEarly) await sleep(250);
    const openSeconds = (performance.now() - started) / 1000;
    await sleep(1_000);
    const heldRss = rssMiBOfTree(pid);
    held = await subscribed();
    redis.disconnect();
    stopping = true;
    await gateway.stop();
    const outcomes = new Map<string, number>();
    for (const outcome of await Promise.all(polls)) outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    agent.destroy();
    return {
      workers,
      'polls tried': heldCount,
      held,
      'answered early': answeredEarly,
      'on drain': [...outcomes].map(([outcome, count]) => `${outcome}: ${count}`).join(', '),
      'idle RSS MiB': Math.round(idleRss),
      'held RSS MiB': Math.round(heldRss),
      'KiB per held poll': +(((heldRss - idleRss) * 1024) / Math.max(1, held)).toFixed(1),
      'all held after s': +openSeconds.toFixed(1),
    };
  });
}

const throughputResults = [];
if (seconds > 0) for (const workers of workerCounts) throughputResults.push(await throughput(workers));
if (throughputResults.length > 0) console.table(throughputResults);
const heldResults = [];
if (heldCount > 0) for (const workers of workerCounts) heldResults.push(await heldPolls(workers));
if (heldResults.length > 0) console.table(heldResults);
const [base, ...others] = throughputResults;
for (const other of others) {
  console.log(`delivered/s with ${other.workers} workers / 1 worker = ${(other['delivered/s'] / base!['delivered/s']).toFixed(2)}`);
}
console.log(JSON.stringify({ benchmark: 'scale-workers', date: new Date().toISOString(), cores: availableParallelism(), seconds, userCount, publisherCount, throughputResults, heldResults }));
