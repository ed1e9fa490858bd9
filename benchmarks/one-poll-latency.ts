/**
 * Publish → delivery latency of one held poll, median of N rounds, on the embedded defaults and
 * (when MYSQL_URL and REDIS_URL are set) on MariaDB + Redis. The gateway runs in this process on
 * a loopback port; the client side uses plain fetch.
 *
 *   npx tsx benchmarks/one-poll-latency.ts [--rounds 100]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import knexFactory from 'knex';
import { startGateway } from '../src/start-from-env.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '100' } } });
const rounds = Number(values.rounds);
const secret = randomBytes(32).toString('hex');

async function measure(name: string, env: Record<string, string>) {
  const gateway = await startGateway({ PORT: '0', LOG_LEVEL: 'silent', GATEWAY_JWT_SECRET: secret, ...env });
  const sender = await gateway.issueToken('bench-sender');
  const recipient = await gateway.issueToken('bench-recipient');
  let cursor = 0;
  const samples: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const held = fetch(`${gateway.url}/v1/poll?wait=10&cursor=${cursor}`, { headers: { Authorization: `Bearer ${recipient}` } });
    while (gateway.engine.heldPollsOf('bench-recipient') === 0) await new Promise((r) => setImmediate(r));
    // The poll is subscribed once it is held; give the first store read time to finish.
    await new Promise((r) => setTimeout(r, 5));
    const started = performance.now();
    await fetch(`${gateway.url}/v1/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${sender}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: 'bench-recipient', id: `r-${round}`, body: { round } }),
    });
    const response = (await (await held).json()) as { messages: unknown[]; cursor: number };
    samples.push(performance.now() - started);
    if (response.messages.length !== 1) throw new Error(`round ${round}: expected 1 message, got ${response.messages.length}`);
    cursor = response.cursor;
  }
  await gateway.close();
  samples.sort((a, b) => a - b);
  const pick = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { backend: name, rounds, medianMs: +pick(0.5).toFixed(2), p95Ms: +pick(0.95).toFixed(2), maxMs: +samples.at(-1)!.toFixed(2) };
}

const results = [await measure('embedded (SQLite + in-process bus)', { SQLITE_FILE: ':memory:' })];
if (process.env.MYSQL_URL && process.env.REDIS_URL) {
  const database = `lpg_bench_${randomBytes(4).toString('hex')}`;
  const admin = knexFactory({ client: 'mysql2', connection: process.env.MYSQL_URL });
  await admin.raw('CREATE DATABASE ??', [database]);
  const url = new URL(process.env.MYSQL_URL);
  url.pathname = `/${database}`;
  try {
    results.push(await measure('MariaDB + Redis', { MYSQL_URL: url.toString(), REDIS_URL: process.env.REDIS_URL, REDIS_PREFIX: `${database}:` }));
  } finally {
    await admin.raw('DROP DATABASE ??', [database]);
    await admin.destroy();
  }
} else {
  console.warn('MYSQL_URL / REDIS_URL not set: MariaDB + Redis skipped (eval "$(bash scripts/services.sh up)")');
}
console.table(results);
console.log(JSON.stringify({ benchmark: 'one-poll-latency', date: new Date().toISOString(), results }));
