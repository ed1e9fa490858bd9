/**
 * How many concurrent held long polls one gateway process holds, and what each costs in RSS.
 * Spawns the built gateway (`npm run build` first) on loopback, opens N polls (one user each),
 * samples the gateway's RSS, then publishes one message to every user and counts deliveries.
 *
 *   npx tsx benchmarks/held-polls.ts [--polls 10000]    (MYSQL_URL/REDIS_URL set: real servers)
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { spawnGateway } from '../test/support/process.js';

const { values } = parseArgs({ options: { polls: { type: 'string', default: '10000' } } });
const polls = Number(values.polls);
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const env: Record<string, string> = { GATEWAY_JWT_SECRET: secret, POLL_WAIT_MAX_S: '120', MAX_HELD_POLLS: String(polls + 100), LOG_LEVEL: 'error',
  // One sender publishes to every poll as fast as it can: measure the gateway, not the rate limits.
  PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' };
if (process.env.MYSQL_URL && process.env.REDIS_URL) Object.assign(env, { MYSQL_URL: process.env.MYSQL_URL, REDIS_URL: process.env.REDIS_URL, REDIS_PREFIX: `bench${randomBytes(3).toString('hex')}:` });
else env.SQLITE_FILE = ':memory:';

const gateway = await spawnGateway(env);
const pid = gateway.child.pid!;
const { port } = new URL(gateway.url);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
await sleep(500);
const idleRss = rssKiB(pid);

const tokens = await Promise.all(Array.from({ length: polls }, (_, i) => issuer.issue(`held-${i}`)));
let delivered = 0;
let failed = 0;
const failures = new Map<string, number>();
const fail = (why: string) => {
  failed += 1;
  failures.set(why, (failures.get(why) ?? 0) + 1);
};
const finished = tokens.map(
  (token) =>
    new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/v1/poll?wait=120', agent, headers: { Authorization: `Bearer ${token}` } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          if (res.statusCode === 200 && (JSON.parse(body) as { messages: unknown[] }).messages.length === 1) delivered += 1;
          else fail(`${res.statusCode} ${body.slice(0, 80)}`);
          resolve();
        });
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        fail(error.code ?? error.message);
        resolve();
      });
    }),
);
await sleep(Math.max(3_000, polls / 2));
const heldRss = rssKiB(pid);

const sender = await issuer.issue('held-sender');
const publishStarted = performance.now();
process.on('uncaughtException', (error) => {
  console.error(error, gateway.output().slice(-3000));
  process.exit(1);
});
for (let start = 0; start < polls; start += 100) {
  const messages = Array.from({ length: Math.min(100, polls - start) }, (_, k) => ({ to: `held-${start + k}`, id: `m-${start + k}`, body: start + k }));
  const res = await fetch(`${gateway.url}/v1/messages/batch`, { method: 'POST', headers: { Authorization: `Bearer ${sender}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ messages }) });
  if (!res.ok) {
    console.error(gateway.output().slice(0, 3000));
    throw new Error(`batch publish failed: ${res.status} ${await res.text()}`);
  }
}
await Promise.race([Promise.all(finished), sleep(60_000)]);
const deliverSeconds = (performance.now() - publishStarted) / 1000;
if (failed > 0) console.error(`gateway output (first 3000 chars):\n${gateway.output().slice(0, 3000)}`);
await gateway.stop();

const result = {
  backend: env.MYSQL_URL ? 'MariaDB + Redis' : 'embedded',
  pollsTried: polls,
  delivered,
  failed,
  failureReasons: Object.fromEntries(failures),
  idleRssMiB: +(idleRss / 1024).toFixed(1),
  heldRssMiB: +(heldRss / 1024).toFixed(1),
  kibPerHeldPoll: +((heldRss - idleRss) / polls).toFixed(2),
  publishAndDeliverAllSeconds: +deliverSeconds.toFixed(2),
};
console.table([result]);
console.log(JSON.stringify({ benchmark: 'held-polls', date: new Date().toISOString(), result }));
process.exit(delivered === polls ? 0 : 1);
