/**
 * The broadcast benchmark (topics): N held polls reading one topic (`announce`, from its start, beside
 * their mailbox), one topic message every `--interval-ms` for `--duration` s, against the gateway
 * on MariaDB + Redis (one process) and the bare node:http and minimal Koa holders in the same
 * broadcast mode; then "today's way" on the same gateway: the same readers polling only their
 * mailboxes and each broadcast published as N mailbox messages in batches of 100. Reports:
 *
 * 1. publish → last reader's delivery p99 (per broadcast, the time until every reader had it)
 *    vs the bare holder's (≤ 3×), and server CPU per delivery vs the Koa holder's (≤ 1.5×);
 * 2. SQL statements (≤ 3) and Redis commands (≤ 2) per topic message, whatever N;
 * 3. against today's way: message rows written per broadcast (≥ 100× fewer) and server CPU per delivery
 *    (≥ 10× less);
 * 4. RSS per held poll reading one topic and its mailbox vs a plain mailbox poll (≤ 1.1×).
 *
 *   npm run build && eval "$(bash scripts/services.sh env)"
 *   npx tsx benchmarks/broadcast.ts [--readers 10000] [--interval-ms 100] [--duration 20]
 *     [--mailbox-broadcasts 10] [--peers gateway,bare,koa,mailbox] [--pin] [--smoke] [--cpu-prof <folder>]
 *     [--gateway-node-flags '--max-semi-space-size=64']
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createConnection } from 'mysql2/promise';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { summarizeLatencies, type LatencySummary } from '../src/bench/stats.js';
import { RawHttpConnection } from './raw-http.js';
import { cpuPinning, fmt, formatBackendCostTable, formatTable, meterDeliveries, openBackendCounters, PEER_NAMES, realServers, report, rssKiB, settledRssKiB, sleep, startPeer, type BackendCost, type PeerKind } from './lib.js';

const { values } = parseArgs({
  options: {
    readers: { type: 'string', default: '10000' },
    'interval-ms': { type: 'string', default: '100' },
    duration: { type: 'string', default: '20' },
    'mailbox-broadcasts': { type: 'string', default: '10' },
    peers: { type: 'string', default: 'gateway,bare,koa,mailbox' },
    pin: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    /** Writes a V8 CPU profile of each gateway run into this folder (for `--peers gateway` or `mailbox`). */
    'cpu-prof': { type: 'string' },
    /** Extra node flags for the gateway runs, e.g. `--max-semi-space-size=64`. */
    'gateway-node-flags': { type: 'string', default: '' },
  },
});
const readers = values.smoke ? 50 : Number(values.readers);
const intervalMs = Number(values['interval-ms']);
const durationS = values.smoke ? 1 : Number(values.duration);
const mailboxBroadcasts = values.smoke ? 2 : Number(values['mailbox-broadcasts']);
type Mode = 'gateway' | 'bare' | 'koa' | 'mailbox';
const modes = values.peers.split(',').map((mode) => mode.trim()) as Mode[];
for (const mode of modes) if (!['gateway', 'bare', 'koa', 'mailbox'].includes(mode)) throw new Error(`Unknown peer ${JSON.stringify(mode)}`);
if (!(readers >= 1 && intervalMs >= 1 && durationS > 0 && mailboxBroadcasts >= 1)) throw new Error('Expected positive --readers, --interval-ms, --duration, --mailbox-broadcasts');

const TOPIC = 'announce';
const TARGET_P99_VS_BARE = 3;
const TARGET_CPU_VS_KOA = 1.5;
const TARGET_SQL_PER_MESSAGE = 3;
const TARGET_REDIS_PER_MESSAGE = 2;
const TARGET_ROWS_FACTOR = 100;
const TARGET_CPU_FACTOR = 10;
const TARGET_RSS_RATIO = 1.1;

if (!realServers()) process.stderr.write('MYSQL_URL / REDIS_URL not set: the gateway runs on the embedded defaults, not MariaDB + Redis\n');
const secret = randomBytes(32).toString('hex');
const issuer = createTokenIssuer({ secret });
const pinning = cpuPinning(values.pin);
const counters = await openBackendCounters();

/** Message rows in the run's own database (the gateway's; holders have none): what broadcasts stored. */
async function messageRows(databaseUrl: string | undefined): Promise<number | null> {
  if (!databaseUrl) return null;
  const connection = await createConnection({ uri: databaseUrl });
  try {
    const [rows] = (await connection.query('SELECT COUNT(*) AS n FROM messages')) as unknown as [Array<{ n: number | string }>];
    return Number(rows[0]!.n);
  } finally {
    await connection.end();
  }
}

/** What a reader scans an answer for: each message's broadcast number, the cursor, the topic's position. */
const BODY_N = /"body":\{"n":(\d+)\}/g;
const CURSOR = /"cursor":(\d+)/;
const POSITION = new RegExp(`"positions":\\{"${TOPIC}":(\\d+)`);


function request(url: string, token: string, agent: http.Agent, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const outgoing = http.request(url, {
      agent,
      method: payload === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
    });
    outgoing.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        try {
          resolve({ status: response.statusCode ?? 0, json: JSON.parse(text) });
        } catch (error) {
          reject(error);
        }
      });
      response.on('error', reject);
    });
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

interface Run {
  mode: Mode;
  peer: string;
  broadcasts: number;
  deliveries: number;
  lost: number;
  /** Per broadcast: publish start → the last reader's delivery, ms. */
  lastReaderMs: LatencySummary;
  /** Every delivery: publish start → that reader's delivery, ms. */
  deliveryMs: LatencySummary;
  serverCpuSeconds: number | null;
  cpuMsPerDelivery: number | null;
  /** Message rows stored per broadcast (COUNT(*) of the run's `messages` table before and after). */
  rowsWrittenPerBroadcast: number | null;
  /** Per topic message (broadcast), not per delivery. */
  counters: BackendCost | null;
  rssPerHeldPollKiB: number;
  publishErrors: number;
  /** Polls that failed at the connection level and were retried. */
  readerErrors: number;
}

async function runMode(mode: Mode): Promise<Run> {
  const kind: PeerKind = mode === 'mailbox' ? 'gateway' : mode;
  const profile = values['cpu-prof'] && kind === 'gateway' ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`, `--cpu-prof-name=broadcast-${mode}.cpuprofile`] : [];
  const extraFlags = kind === 'gateway' ? values['gateway-node-flags'].split(' ').filter(Boolean) : [];
  const peer = await startPeer(kind, secret, { MAX_HELD_POLLS: String(readers + 1000), POLL_MAX_PER_USER: '2' }, [...extraFlags, ...profile]);
  const name = mode === 'mailbox' ? `${PEER_NAMES.gateway}, today's way (mailbox publishes)` : 'backend' in peer && peer.backend ? `${peer.name} (${peer.backend})` : peer.name;
  const viaTopic = mode !== 'mailbox';
  try {
    pinning.server(peer.pid);
    const users = Array.from({ length: readers }, (_, index) => `r${index}`);
    const tokens = await Promise.all(users.map((user) => issuer.issue(user, { topics: { [TOPIC]: ['read'] } })));
    const publisherToken = await issuer.issue('announcer', { topics: { [TOPIC]: ['publish'] }, pub: ['r*'] });
    const idleRss = await settledRssKiB(peer.pid, 5_000);

    /** Arrival time of broadcast n at each reader: receivedAt[n][reader]. */
    const receivedAt = new Map<number, Float64Array>();
    const publishedAt = new Map<number, number>();
    const arrivals = new Map<number, number>();
    let stopped = false;
    let held = 0;
    let readerErrors = 0;
    const target = new URL(peer.url);
    const publisherAgent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    const connections = new Set<RawHttpConnection>();

    /**
     * One reader: one keep-alive connection (as a device holds), polling its mailbox and the topic
     * from its position. Answers are scanned, not parsed: the load generator must stay far from
     * its core's limit at 100,000 deliveries a second.
     */
    async function readLoop(index: number): Promise<void> {
      let cursor = 0;
      // From the start of the (fresh) topic, not "from now": a reader whose first poll lands after
      // the warm-up broadcast must still get it.
      let position = 0;
      let connection: RawHttpConnection | undefined;
      const headers = `Host: ${target.host}\r\nAuthorization: Bearer ${tokens[index]!}\r\n`;
      while (!stopped) {
        const topicPart = viaTopic ? `&topic=${TOPIC}@${position}` : '';
        if (!connection) connections.add((connection = new RawHttpConnection(target.hostname, Number(target.port), headers)));
        held += 1;
        let body: string;
        try {
          const answer = await connection.get(`/v1/poll?wait=60&cursor=${cursor}${topicPart}`);
          if (answer.status !== 200) throw new Error(`poll answered ${answer.status}: ${answer.body.slice(0, 200)}`);
          body = answer.body;
        } catch {
          connection.close();
          connections.delete(connection);
          connection = undefined;
          if (stopped) return;
          // A refused or reset connection (a full accept queue while thousands connect at once):
          // the reader retries from its position, as a client would, and nothing is lost.
          readerErrors += 1;
          await sleep(50);
          continue;
        } finally {
          held -= 1;
        }
        const now = performance.now();
        for (const match of body.matchAll(BODY_N)) {
          const n = Number(match[1]);
          let times = receivedAt.get(n);
          if (!times) receivedAt.set(n, (times = new Float64Array(readers)));
          if (times[index] === 0) {
            times[index] = now;
            arrivals.set(n, (arrivals.get(n) ?? 0) + 1);
          }
        }
        cursor = Number(CURSOR.exec(body)?.[1] ?? cursor);
        if (viaTopic) position = Number(POSITION.exec(body)?.[1] ?? position);
      }
    }

    let publishErrors = 0;
    /** A publish, retried (with the same ids, so never stored twice) when its connection fails. */
    async function post(path: string, json: unknown): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        try {
          const { status } = await request(`${peer.url}${path}`, publisherToken, publisherAgent, json);
          if (status >= 300) publishErrors += 1;
          return;
        } catch (error) {
          if (attempt >= 5) throw error;
          await sleep(20 * attempt);
        }
      }
    }
    async function broadcast(n: number): Promise<void> {
      publishedAt.set(n, performance.now());
      const body = { n };
      if (viaTopic) return post('/v1/messages', { topic: TOPIC, id: `b${n}`, body });
      // Today's way: one mailbox message per reader, in batches of 100, all at once.
      const batches: Array<Promise<void>> = [];
      for (let start = 0; start < readers; start += 100) {
        batches.push(post('/v1/messages/batch', { messages: users.slice(start, start + 100).map((to) => ({ to, id: `b${n}-${to}`, body })) }));
      }
      await Promise.all(batches);
    }

    async function untilDelivered(n: number, timeoutMs: number): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      while ((arrivals.get(n) ?? 0) < readers && Date.now() < deadline) await sleep(5);
      return (arrivals.get(n) ?? 0) >= readers;
    }

    const loops = users.map((_, index) => readLoop(index));
    // Warm-up broadcast 0: every reader is connected, has its position and is held again.
    const connectDeadline = Date.now() + 60_000;
    while (held < readers && Date.now() < connectDeadline) await sleep(50);
    // Measured before anything is delivered: every reader holds its first poll, and no answer's
    // garbage is in the heap yet, in either mode.
    const heldRss = await settledRssKiB(peer.pid, 10_000);
    await broadcast(0);
    if (!(await untilDelivered(0, 60_000))) throw new Error(`${name}: the warm-up broadcast did not reach every reader`);
    while (held < readers && Date.now() < connectDeadline + 30_000) await sleep(20);

    const meter = meterDeliveries(counters, peer.pid);
    const window = meter.hooks.deliveryWindow();
    const rowsBefore = await messageRows(peer.databaseUrl);
    await window.start();
    let broadcasts = 0;
    if (viaTopic) {
      const started = performance.now();
      const total = Math.round((durationS * 1000) / intervalMs);
      const sends: Array<Promise<void>> = [];
      for (let n = 1; n <= total; n++) {
        const due = started + (n - 1) * intervalMs;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        sends.push(broadcast(n));
        broadcasts = n;
      }
      await Promise.all(sends);
      await untilDelivered(broadcasts, 60_000);
      for (let n = 1; n <= broadcasts; n++) await untilDelivered(n, 1_000);
    } else {
      for (let n = 1; n <= mailboxBroadcasts; n++) {
        await broadcast(n);
        await untilDelivered(n, 120_000);
        broadcasts = n;
        await sleep(intervalMs);
      }
    }
    // Readers re-poll (and ack) after the last delivery: give that a moment inside the window.
    await sleep(300);
    await window.end();
    const rowsAfter = await messageRows(peer.databaseUrl);
    stopped = true;
    for (const connection of connections) connection.close();
    publisherAgent.destroy();
    await Promise.allSettled(loops);

    const lastReader: number[] = [];
    const every: number[] = [];
    let deliveries = 0;
    for (let n = 1; n <= broadcasts; n++) {
      const times = receivedAt.get(n);
      const start = publishedAt.get(n)!;
      if (!times) continue;
      let last = 0;
      for (const time of times) {
        if (time === 0) continue;
        deliveries += 1;
        every.push(time - start);
        last = Math.max(last, time - start);
      }
      lastReader.push(last);
    }
    const cpu = meter.serverCpuSeconds();
    return {
      mode,
      peer: name,
      broadcasts,
      deliveries,
      lost: broadcasts * readers - deliveries,
      lastReaderMs: summarizeLatencies(lastReader),
      deliveryMs: summarizeLatencies(every),
      serverCpuSeconds: cpu,
      cpuMsPerDelivery: cpu === null || deliveries === 0 ? null : (cpu * 1000) / deliveries,
      rowsWrittenPerBroadcast: rowsBefore === null || rowsAfter === null ? null : (rowsAfter - rowsBefore) / broadcasts,
      counters: meter.cost(broadcasts),
      rssPerHeldPollKiB: (heldRss - idleRss) / readers,
      publishErrors,
      readerErrors,
    };
  } finally {
    await peer.stop();
  }
}

const runs: Run[] = [];
try {
  for (const mode of modes) {
    process.stderr.write(`broadcast: ${mode}…\n`);
    const run = await runMode(mode);
    runs.push(run);
    // Each run as it ends, so a later run that fails leaves the earlier figures behind.
    process.stderr.write(`broadcast: ${JSON.stringify({ ...run, counters: undefined })}\n`);
  }
} finally {
  await counters?.close();
}

const find = (mode: Mode) => runs.find((run) => run.mode === mode);
const [gateway, bare, koa, mailbox] = [find('gateway'), find('bare'), find('koa'), find('mailbox')];
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b);
const sound = gateway !== undefined && gateway.lost === 0 && gateway.publishErrors === 0;
const targets = {
  p99VsBare: { measured: ratio(gateway?.lastReaderMs.p99, bare?.lastReaderMs.p99), target: TARGET_P99_VS_BARE },
  cpuVsKoa: { measured: ratio(gateway?.cpuMsPerDelivery, koa?.cpuMsPerDelivery), target: TARGET_CPU_VS_KOA },
  sqlPerTopicMessage: { measured: gateway?.counters?.sqlStatementsPerMessage ?? null, target: TARGET_SQL_PER_MESSAGE },
  redisPerTopicMessage: { measured: gateway?.counters?.redisCommandsPerMessage ?? null, target: TARGET_REDIS_PER_MESSAGE },
  fewerRowsThanMailboxes: { measured: ratio(mailbox?.rowsWrittenPerBroadcast, gateway?.rowsWrittenPerBroadcast), target: TARGET_ROWS_FACTOR },
  lessCpuThanMailboxes: { measured: ratio(mailbox?.cpuMsPerDelivery, gateway?.cpuMsPerDelivery), target: TARGET_CPU_FACTOR },
  rssVsPlainPoll: { measured: ratio(gateway?.rssPerHeldPollKiB, mailbox?.rssPerHeldPollKiB), target: TARGET_RSS_RATIO },
};
const atMost = (entry: { measured: number | null; target: number }) => (entry.measured === null ? null : sound && entry.measured <= entry.target);
const atLeast = (entry: { measured: number | null; target: number }) => (entry.measured === null ? null : sound && entry.measured >= entry.target);
const verdicts = {
  p99VsBare: atMost(targets.p99VsBare),
  cpuVsKoa: atMost(targets.cpuVsKoa),
  sqlPerTopicMessage: atMost(targets.sqlPerTopicMessage),
  redisPerTopicMessage: atMost(targets.redisPerTopicMessage),
  fewerRowsThanMailboxes: atLeast(targets.fewerRowsThanMailboxes),
  lessCpuThanMailboxes: atLeast(targets.lessCpuThanMailboxes),
  rssVsPlainPoll: atMost(targets.rssVsPlainPoll),
};
const verdict = (met: boolean | null) => (met === null ? '-' : met ? 'yes' : 'NO');

report(
  'broadcast',
  ['peer', 'broadcasts', 'deliveries', 'lost', 'poll errors', 'last reader p50 ms', 'p99 ms', 'max ms', 'delivery p99 ms', 'srv CPU ms/delivery', 'message rows/broadcast', 'SQL/broadcast', 'Redis/broadcast', 'RSS KiB/held poll'],
  runs.map((run) => [
    run.peer,
    run.broadcasts,
    run.deliveries,
    run.lost,
    run.readerErrors,
    fmt(run.lastReaderMs.p50, 1),
    fmt(run.lastReaderMs.p99, 1),
    fmt(run.lastReaderMs.max, 1),
    fmt(run.deliveryMs.p99, 1),
    fmt(run.cpuMsPerDelivery, 4),
    fmt(run.rowsWrittenPerBroadcast, 1),
    fmt(run.counters?.sqlStatementsPerMessage, 2),
    fmt(run.counters?.redisCommandsPerMessage, 2),
    fmt(run.rssPerHeldPollKiB, 2),
  ]),
  { readers, intervalMs, durationS, mailboxBroadcasts, pinning: pinning.description, runs, targets, verdicts },
  [
    formatTable([
      ['target', 'measured', 'holds'],
      [`1. last reader p99 ÷ bare (≤ ${TARGET_P99_VS_BARE})`, fmt(targets.p99VsBare.measured, 2), verdict(verdicts.p99VsBare)],
      [`1. CPU/delivery ÷ Koa (≤ ${TARGET_CPU_VS_KOA})`, fmt(targets.cpuVsKoa.measured, 2), verdict(verdicts.cpuVsKoa)],
      [`2. SQL statements per topic message (≤ ${TARGET_SQL_PER_MESSAGE})`, fmt(targets.sqlPerTopicMessage.measured, 2), verdict(verdicts.sqlPerTopicMessage)],
      [`2. Redis commands per topic message (≤ ${TARGET_REDIS_PER_MESSAGE})`, fmt(targets.redisPerTopicMessage.measured, 2), verdict(verdicts.redisPerTopicMessage)],
      [`3. rows written: mailboxes ÷ topic (≥ ${TARGET_ROWS_FACTOR})`, fmt(targets.fewerRowsThanMailboxes.measured, 0), verdict(verdicts.fewerRowsThanMailboxes)],
      [`3. CPU/delivery: mailboxes ÷ topic (≥ ${TARGET_CPU_FACTOR})`, fmt(targets.lessCpuThanMailboxes.measured, 1), verdict(verdicts.lessCpuThanMailboxes)],
      [`4. RSS/held poll: topic + mailbox ÷ mailbox only (≤ ${TARGET_RSS_RATIO})`, fmt(targets.rssVsPlainPoll.measured, 2), verdict(verdicts.rssVsPlainPoll)],
    ]),
    formatBackendCostTable(runs.filter((run) => run.mode === 'gateway' || run.mode === 'mailbox').map((run) => ({ what: `${run.mode} (per broadcast)`, cost: run.counters }))),
    `RSS per held poll: (settled RSS with every reader held − idle RSS) ÷ readers; ${rssKiB.name} of the server process.`,
  ],
);
process.exit(runs.every((run) => run.lost === 0 && run.publishErrors === 0) ? 0 : 1);
