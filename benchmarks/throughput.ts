/**
 * Benchmark 3, throughput ceiling on MariaDB + Redis, everything in one run with the same load
 * tester settings: messages delivered per second (held long polls, a publisher as fast as the
 * server accepts) by
 *
 * - the bare node:http and minimal Koa holders (in memory: the ceiling of a Node process);
 * - the gateway, one process, one message per publish request;
 * - the gateway, one process, `--publish-batch` messages per `POST /v1/messages/batch`;
 * - the gateway on every core (`start --workers`: node:cluster workers sharing one port);
 *
 * as ratios to the Koa holder's ceiling and to the raw rate of single-row INSERTs by mysql2 into
 * the same table (the floor a durable design can reach: every message is at least one insert).
 * For every run: SQL statements (MariaDB Com_* counters) and Redis commands (INFO commandstats)
 * per delivered message, and the server's CPU seconds, over the deliveries only.
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/throughput.ts [--messages 10000] [--clients 1000] [--publish-batch 100]
 *     [--insert-seconds 10] [--workers <cores>] [--pin] [--smoke]
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createPool } from 'mysql2/promise';
import { runBench } from '../src/bench/command.js';
import { parseBenchArgs } from '../src/bench/options.js';
import type { ModeResult } from '../src/bench/runner.js';
import { createKnex, createKnexStore } from '../src/store/knex/index.js';
import {
  backendCost,
  benchDatabase,
  cpuPinning,
  fmt,
  formatBackendCostTable,
  formatTable,
  meterDeliveries,
  openBackendCounters,
  PEER_NAMES,
  report,
  startPeer,
  type BackendCost,
  type PeerKind,
} from './lib.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '10000' },
    clients: { type: 'string', default: '1000' },
    'publish-batch': { type: 'string', default: '100' },
    'batch-messages': { type: 'string', default: '100000' },
    workers: { type: 'string', default: String(cpus().length) },
    'insert-seconds': { type: 'string', default: '10' },
    'insert-connections': { type: 'string', default: '20' },
    pin: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const messages = values.smoke ? 200 : Number(values.messages);
const clients = values.smoke ? 20 : Number(values.clients);
const publishBatch = Number(values['publish-batch']);
// Batches go 100 times faster through the publisher's in-flight cap (128 requests): with as few
// messages as the other runs they would all be in flight at once, a burst rather than a ceiling.
const batchMessages = values.smoke ? 200 : Number(values['batch-messages']);
const workers = Number(values.workers);
const insertSeconds = values.smoke ? 0.5 : Number(values['insert-seconds']);
const insertConnections = Number(values['insert-connections']);
for (const [name, value] of Object.entries({ messages, clients, 'publish-batch': publishBatch, 'batch-messages': batchMessages, workers, 'insert-connections': insertConnections })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`Expected \`--${name}\` to be a positive integer, got ${value}`);
}
if (!(insertSeconds > 0)) throw new Error('Expected `--insert-seconds` to be a positive number');

/** Target 2 of the performance issue: the ceiling of one process, single and batched publishes. */
const TARGET_SINGLE_VS_KOA = 0.8;
const TARGET_BATCH_MSG_PER_S = 7_900;
/** Receipts on (every publish asks for one) may cost at most this much server CPU per delivered message. */
const TARGET_RECEIPTS_CPU = 1.3;
/** Target 3: what each delivered message may cost the database and Redis, amortised. */
const TARGET_SQL_PER_MESSAGE = 1.5;
const TARGET_REDIS_PER_MESSAGE = 1;

const secret = randomBytes(32).toString('hex');
const pinning = cpuPinning(values.pin);
const counters = await openBackendCounters();
if (!counters) throw new Error('MYSQL_URL / REDIS_URL are not set: run eval "$(bash scripts/services.sh up)"');

/** Raw single-row INSERTs, `connections` at a time, for `seconds`, into a migrated table: rows per second. */
async function rawInsertRate(mysqlUrl: string): Promise<{ rows: number; seconds: number; perSecond: number }> {
  const pool = createPool({ uri: mysqlUrl, connectionLimit: insertConnections });
  let rows = 0;
  const started = performance.now();
  const deadline = started + insertSeconds * 1000;
  await Promise.all(
    Array.from({ length: insertConnections }, async (_, worker) => {
      while (performance.now() < deadline) {
        const n = rows++;
        // The row the gateway stores, `seq` (per-mailbox sequence, indexed) included.
        await pool.execute('INSERT INTO messages (user_id, sender_id, client_msg_id, body, status, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?)', [
          `raw-${n % clients}`,
          `raw-sender-${worker}`,
          `raw-${n}`,
          JSON.stringify({ run: 'raw', seq: n }),
          'pending',
          Date.now(),
          n + 1,
        ]);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.end();
  return { rows, seconds, perSecond: rows / seconds };
}

interface Run {
  what: string;
  kind: PeerKind;
  publishBatch: number;
  messages: number;
  env?: Record<string, string>;
  /** Every publish asks for a delivery receipt. */
  receipts?: boolean;
}

interface Measured extends Run {
  result: ModeResult;
  serverCpuSeconds: number | null;
  counters: BackendCost | null;
}

const runs: Run[] = [
  { what: PEER_NAMES.bare, kind: 'bare', publishBatch: 1, messages },
  { what: PEER_NAMES.koa, kind: 'koa', publishBatch: 1, messages },
  { what: 'gateway, one process', kind: 'gateway', publishBatch: 1, messages },
  { what: 'gateway, one process, receipts on', kind: 'gateway', publishBatch: 1, messages, receipts: true },
  { what: `gateway, one process, batch ${publishBatch}`, kind: 'gateway', publishBatch, messages: batchMessages, env: { MAX_BATCH_MESSAGES: String(Math.max(100, publishBatch)) } },
  // `start --workers` (GATEWAY_WORKERS): node:cluster workers sharing one port.
  { what: `gateway, ${workers} workers`, kind: 'gateway', publishBatch: 1, messages, env: { GATEWAY_WORKERS: String(workers) } },
];

/**
 * A rate far above what any peer takes: the publisher then runs closed-loop, limited by its
 * in-flight cap (4 × --publish-connections requests), and the delivered rate is the ceiling. (The
 * load tester's maximum: a server that keeps up with it was never pushed back, see the notes.)
 */
const SCHEDULE_RATE = 20_000;

async function measure(run: Run): Promise<Measured> {
  const peer = await startPeer(run.kind, secret, run.env);
  try {
    pinning.server(peer.pid);
    const meter = meterDeliveries(counters, peer.pid);
    const options = parseBenchArgs(
      [
        ...['--url', peer.url, '--secret', secret, '--clients', String(clients), '--rate', String(SCHEDULE_RATE), '--duration', String(run.messages / SCHEDULE_RATE)],
        ...['--short', 'none', '--long', '25', '--drain-timeout', '60', '--publish-batch', String(run.publishBatch)],
        ...(run.receipts ? ['--receipts'] : []),
        // The workers of `start --workers` are several processes: their CPU comes from the meter.
        ...['--server-pid', run.env?.GATEWAY_WORKERS ? 'none' : String(peer.pid)],
      ],
      {},
    );
    options.progress = process.stderr.isTTY === true;
    const bench = await runBench(options, { stdout: process.stdout, stderr: process.stderr }, undefined, meter.hooks);
    for (const warning of bench.warnings) process.stderr.write(`${run.what}: warning: ${warning}\n`);
    const result = bench.modes[0]!;
    return { ...run, result, serverCpuSeconds: meter.serverCpuSeconds(), counters: meter.cost(result.delivered) };
  } finally {
    await peer.stop();
  }
}

const throughput = (result: ModeResult) => result.delivered / result.deliverySeconds;

let raw: { rows: number; seconds: number; perSecond: number; counters: BackendCost | null };
const measured: Measured[] = [];
try {
  const database = await benchDatabase();
  try {
    // The schema first (its statements are not the inserts'), then the counters' own check: a raw
    // insert must read as one statement per row.
    await (await createKnexStore({ knex: createKnex({ mysqlUrl: database.mysqlUrl }) })).close();
    const before = await counters.snapshot();
    const inserted = await rawInsertRate(database.mysqlUrl);
    raw = { ...inserted, counters: backendCost(before, await counters.snapshot(), inserted.rows) };
  } finally {
    await database.drop();
  }
  process.stderr.write(`raw mysql2 inserts: ${raw.perSecond.toFixed(0)} rows/s (${insertConnections} connections)\n`);
  for (const run of runs) measured.push(await measure(run));
} finally {
  await counters.close();
}

const find = (predicate: (run: Measured) => boolean) => measured.find(predicate);
const koa = find((run) => run.kind === 'koa');
const single = find((run) => run.kind === 'gateway' && run.publishBatch === 1 && !run.env?.GATEWAY_WORKERS && !run.receipts);
const withReceipts = find((run) => run.kind === 'gateway' && run.receipts === true);
const cpuPerMessage = (run: Measured | undefined) => (run && run.serverCpuSeconds !== null ? run.serverCpuSeconds / Math.max(1, run.result.delivered) : NaN);
const batch = find((run) => run.kind === 'gateway' && run.publishBatch > 1);
const koaCeiling = koa ? throughput(koa.result) : NaN;

const atMost = (measuredValue: number | null | undefined, target: number) => ({ measured: measuredValue ?? null, target, met: measuredValue !== null && measuredValue !== undefined && measuredValue <= target });
const targets = {
  singlePublishVsKoaCeiling: single && koa ? { measured: throughput(single.result) / koaCeiling, gatewayMsgPerS: throughput(single.result), koaMsgPerS: koaCeiling, target: TARGET_SINGLE_VS_KOA, met: throughput(single.result) / koaCeiling >= TARGET_SINGLE_VS_KOA } : null,
  receiptsCpuVsWithout:
    single && withReceipts
      ? { measured: cpuPerMessage(withReceipts) / cpuPerMessage(single), target: TARGET_RECEIPTS_CPU, met: cpuPerMessage(withReceipts) / cpuPerMessage(single) <= TARGET_RECEIPTS_CPU }
      : null,
  batchPublishMsgPerS: batch ? { measured: throughput(batch.result), publishBatch, target: TARGET_BATCH_MSG_PER_S, met: throughput(batch.result) >= TARGET_BATCH_MSG_PER_S } : null,
  sqlStatementsPerMessage: Object.fromEntries([single, batch].filter((run) => run !== undefined).map((run) => [run.what, atMost(run.counters?.sqlStatementsPerMessage, TARGET_SQL_PER_MESSAGE)])),
  redisCommandsPerMessage: Object.fromEntries([single, batch].filter((run) => run !== undefined).map((run) => [run.what, atMost(run.counters?.redisCommandsPerMessage, TARGET_REDIS_PER_MESSAGE)])),
};

const verdict = (met: boolean | undefined) => (met === undefined ? '-' : met ? 'yes' : 'NO');
const targetRows: string[][] = [
  ['target', 'measured', 'wanted', 'met'],
  ['gateway single publishes ÷ Koa ceiling', fmt(targets.singlePublishVsKoaCeiling?.measured, 2), `≥ ${TARGET_SINGLE_VS_KOA}`, verdict(targets.singlePublishVsKoaCeiling?.met)],
  [`gateway batch ${publishBatch} msg/s`, fmt(targets.batchPublishMsgPerS?.measured, 0), `≥ ${TARGET_BATCH_MSG_PER_S}`, verdict(targets.batchPublishMsgPerS?.met)],
  ['server CPU per message, receipts on ÷ off', fmt(targets.receiptsCpuVsWithout?.measured, 2), `≤ ${TARGET_RECEIPTS_CPU}`, verdict(targets.receiptsCpuVsWithout?.met)],
  ...Object.entries(targets.sqlStatementsPerMessage).map(([what, value]) => [`SQL statements / msg (${what})`, fmt(value.measured, 2), `≤ ${TARGET_SQL_PER_MESSAGE}`, verdict(value.met)]),
  ...Object.entries(targets.redisCommandsPerMessage).map(([what, value]) => [`Redis commands / msg (${what})`, fmt(value.measured, 2), `≤ ${TARGET_REDIS_PER_MESSAGE}`, verdict(value.met)]),
];
const notes = [
  formatBackendCostTable([{ what: `raw mysql2 INSERT (${raw!.rows} rows)`, cost: raw!.counters }, ...measured.map((run) => ({ what: run.what, cost: run.counters }))]),
  formatTable(targetRows),
];
for (const run of measured) {
  if (run.result.backpressureWaits === 0) {
    notes.push(`Note: ${run.what} never pushed the publisher back (it kept up with ${SCHEDULE_RATE} msg/s scheduled, or all its requests fit in flight at once): its msg/s is a lower bound, not a ceiling.`);
  }
}
if (koa?.result.loadGeneratorBound) {
  notes.push('Note: the Koa holder run was load-generator bound (!): its "ceiling" is the load generator\'s, so ÷ Koa flatters the gateway.');
}
if (pinning.description && measured.some((run) => run.env?.GATEWAY_WORKERS)) {
  notes.push(`Note: with --pin the ${workers} workers share ${pinning.description.server}: that row measures worker overhead, not scaling.`);
}

report(
  'throughput',
  ['what', 'delivered', 'lost+dup', 'seconds', 'msg/s', '÷ Koa ceiling', '÷ raw inserts', 'SQL/msg', 'Redis/msg', 'srv CPU s', 'p50 ms', 'p99 ms', 'gen CPU'],
  [
    [`raw mysql2 INSERT (${insertConnections} connections)`, raw!.rows, '-', fmt(raw!.seconds, 2), fmt(raw!.perSecond, 0), fmt(raw!.perSecond / koaCeiling, 2), '1.00', fmt(raw!.counters?.sqlStatementsPerMessage, 2), '-', '-', '-', '-', '-'],
    ...measured.map((run) => [
      run.what,
      run.result.delivered,
      run.result.lost + run.result.duplicated + run.result.misrouted,
      fmt(run.result.deliverySeconds, 2),
      fmt(throughput(run.result), 0),
      fmt(throughput(run.result) / koaCeiling, 2),
      fmt(throughput(run.result) / raw!.perSecond, 2),
      fmt(run.counters?.sqlStatementsPerMessage, 2),
      fmt(run.counters?.redisCommandsPerMessage, 2),
      fmt(run.serverCpuSeconds, 2),
      fmt(run.result.latencyMs.p50),
      fmt(run.result.latencyMs.p99),
      `${Math.round(run.result.loadGenerator.cpuShareOfOneCore * 100)}%${run.result.loadGeneratorBound ? '!' : ''}`,
    ]),
  ],
  {
    messages,
    batchMessages,
    clients,
    publishBatch,
    pinning: pinning.description,
    rawInserts: raw!,
    results: measured.map((run) => ({
      what: run.what,
      kind: run.kind,
      publishBatch: run.publishBatch,
      receipts: run.receipts === true,
      throughput: throughput(run.result),
      ratioToKoaCeiling: throughput(run.result) / koaCeiling,
      ratioToRawInserts: throughput(run.result) / raw!.perSecond,
      serverCpuSeconds: run.serverCpuSeconds,
      counters: run.counters,
      result: run.result,
    })),
    targets,
  },
  notes,
);
process.exit(measured.every(({ result }) => result.lost + result.duplicated + result.misrouted === 0) ? 0 : 1);
