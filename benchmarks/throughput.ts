/**
 * Benchmark 3, throughput ceiling on MariaDB + Redis: messages delivered per second by one
 * gateway process (held long polls, a publisher as fast as the gateway accepts), as a ratio to
 * the raw rate of single-row INSERTs by mysql2 into the same table in the same run (the floor a
 * durable design can reach: every message is at least one insert). Then the same with every core
 * (`start --workers`: node:cluster workers sharing one port).
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/throughput.ts [--messages 10000] [--clients 1000] [--insert-seconds 10] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createPool } from 'mysql2/promise';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import { createKnex, createKnexStore } from '../src/store/knex-store.js';
import { spawnGateway } from '../test/support/process.js';
import { benchDatabase, fmt, report } from './lib.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '10000' },
    clients: { type: 'string', default: '1000' },
    'insert-seconds': { type: 'string', default: '10' },
    'insert-connections': { type: 'string', default: '20' },
    smoke: { type: 'boolean', default: false },
  },
});
const messages = values.smoke ? 200 : Number(values.messages);
const clients = values.smoke ? 20 : Number(values.clients);
const insertSeconds = values.smoke ? 0.5 : Number(values['insert-seconds']);
const insertConnections = Number(values['insert-connections']);
const secret = randomBytes(32).toString('hex');

/** Raw single-row INSERTs, `connections` at a time, for `seconds`: rows per second. */
async function rawInsertRate(mysqlUrl: string): Promise<{ rows: number; seconds: number; perSecond: number }> {
  const store = await createKnexStore({ knex: createKnex({ mysqlUrl }) });
  await store.close();
  const pool = createPool({ uri: mysqlUrl, connectionLimit: insertConnections });
  let rows = 0;
  const started = performance.now();
  const deadline = started + insertSeconds * 1000;
  await Promise.all(
    Array.from({ length: insertConnections }, async (_, worker) => {
      while (performance.now() < deadline) {
        const n = rows++;
        await pool.execute('INSERT INTO messages (user_id, sender_id, client_msg_id, body, status, created_at) VALUES (?, ?, ?, ?, ?, ?)', [
          `raw-${n % clients}`,
          `raw-sender-${worker}`,
          `raw-${n}`,
          JSON.stringify({ run: 'raw', seq: n }),
          'pending',
          Date.now(),
        ]);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.end();
  return { rows, seconds, perSecond: rows / seconds };
}

async function deliveredRate(url: string, serverPid: number | undefined): Promise<ModeResult> {
  // A rate far above what the gateway takes: the publisher then runs closed-loop, limited by its
  // in-flight cap (4 × --publish-connections), and the delivered rate is the gateway's ceiling.
  const rate = 20_000;
  const options = parseBenchArgs(
    ['--url', url, '--secret', secret, '--clients', String(clients), '--rate', String(rate), '--duration', String(messages / rate), '--short', 'none', '--long', '25', '--drain-timeout', '60', '--server-pid', serverPid === undefined ? 'none' : String(serverPid)],
    {},
  );
  options.progress = process.stderr.isTTY === true;
  const bench = await runBench(options, { stdout: process.stdout, stderr: process.stderr });
  for (const warning of bench.warnings) process.stderr.write(`warning: ${warning}\n`);
  return bench.modes[0]!;
}

/**
 * Profile of where the database time goes: statement and fsync counters of the server around a run
 * (global counters: other clients of the same server add noise, so read them as approximate).
 */
const COUNTERS = ['Com_insert', 'Com_update', 'Com_select', 'Com_commit', 'Innodb_os_log_fsyncs', 'Innodb_data_fsyncs', 'Queries'];
async function serverCounters(mysqlUrl: string): Promise<Record<string, number>> {
  const pool = createPool({ uri: mysqlUrl, connectionLimit: 1 });
  try {
    const [rows] = (await pool.query('SHOW GLOBAL STATUS WHERE Variable_name IN (?)', [COUNTERS])) as unknown as [Array<{ Variable_name: string; Value: string }>];
    return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
  } finally {
    await pool.end();
  }
}
const perMessage: Record<string, Record<string, number>> = {};

const database = await benchDatabase();
const rows: Array<[string, ModeResult | undefined, number]> = [];
let raw;
try {
  raw = await rawInsertRate(database.mysqlUrl);
  process.stderr.write(`raw mysql2 inserts: ${raw.perSecond.toFixed(0)} rows/s (${insertConnections} connections)\n`);
  const env = { ...database.env, GATEWAY_JWT_SECRET: secret, LOG_LEVEL: 'error', MAX_HELD_POLLS: '60000', PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' };
  const single = await spawnGateway({ ...env, GATEWAY_WORKERS: '1' });
  try {
    const before = await serverCounters(database.mysqlUrl);
    const result = await deliveredRate(single.url, single.child.pid);
    const after = await serverCounters(database.mysqlUrl);
    perMessage['one process'] = Object.fromEntries(COUNTERS.map((name) => [name, +(((after[name] ?? 0) - (before[name] ?? 0)) / Math.max(1, result.delivered)).toFixed(2)]));
    rows.push(['one process', result, 1]);
  } finally {
    await single.stop();
  }
  const workers = cpus().length;
  // `start --workers` (GATEWAY_WORKERS): node:cluster workers sharing one port.
  const cluster = await spawnGateway({ ...env, GATEWAY_WORKERS: String(workers) });
  try {
    rows.push([`${workers} workers (GATEWAY_WORKERS=${workers})`, await deliveredRate(cluster.url, undefined), workers]);
  } finally {
    await cluster.stop();
  }
} finally {
  await database.drop();
}
const throughput = (result: ModeResult | undefined) => (result ? result.delivered / result.deliverySeconds : NaN);
report(
  'throughput',
  ['what', 'delivered', 'lost+dup', 'seconds', 'msg/s', '÷ raw inserts/s', 'p50 ms', 'p99 ms', 'gen CPU', 'srv CPU s'],
  [
    [`raw mysql2 INSERT (${insertConnections} connections)`, raw!.rows, '-', fmt(raw!.seconds, 2), fmt(raw!.perSecond, 0), '1.00', '-', '-', '-', '-'],
    ...rows.map(([what, result]) => [
      what,
      result?.delivered ?? 0,
      result ? result.lost + result.duplicated + result.misrouted : '-',
      fmt(result?.deliverySeconds, 2),
      fmt(throughput(result), 0),
      fmt(throughput(result) / raw!.perSecond, 2),
      fmt(result?.latencyMs.p50),
      fmt(result?.latencyMs.p99),
      result ? `${Math.round(result.loadGenerator.cpuShareOfOneCore * 100)}%${result.loadGeneratorBound ? '!' : ''}` : '-',
      fmt(result?.server?.cpuSeconds, 2),
    ]),
  ],
  { messages, clients, rawInserts: raw, mariadbCountersPerDeliveredMessage: perMessage, results: rows.map(([what, result]) => ({ what, throughput: throughput(result), ratioToRawInserts: throughput(result) / raw!.perSecond, result })) },
);
process.stderr.write(`MariaDB counters per delivered message (one process; global counters, approximate): ${JSON.stringify(perMessage['one process'])}\n`);
process.exit(0);
