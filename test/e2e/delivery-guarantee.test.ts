/**
 * Jepsen-style checks of the delivery guarantees. Mailboxes, on real MariaDB + Redis:
 *
 *   A cursor the client sends back acks only messages that were in responses the client
 *   received. So under lost responses, the same cursor answered concurrently by several
 *   processes or workers, out-of-order commits, any limit, and gateway restarts, every
 *   2xx-answered publish reaches its recipient at least once, and one sender's messages reach a
 *   recipient in publish order (after client dedup by message id).
 *
 * Topology: one database + Redis prefix shared by two single-process gateways and one
 * `start --workers 2` gateway (3 URLs, 4 serving processes). Several publishers per mailbox send
 * numbered sequences (singles and batches, so commits land out of id order across publishers) to
 * random endpoints, retrying the same request elsewhere on any failure. One receiver per mailbox
 * polls with a random small limit (each request its own); it throws some responses away after
 * reading them and sometimes sends the same cursor to two endpoints at once, keeping only one answer. In the middle of the
 * publish phase one single-process gateway is SIGKILLed and restarted, and one worker of the
 * multi-worker gateway is SIGKILLed (its supervisor replaces it).
 *
 * Publishers slow down while their mailbox has a backlog (BACKLOG_CAP), so the drain after the
 * publish phase stays short on a slow or busy machine. A receiver stops when it has every
 * acknowledged message of its mailbox, when the server answers its polls empty several rounds in a
 * row (nothing unacked left: a missing message was acked unseen), or at the drain deadline.
 *
 * Topics, on the embedded defaults and on MariaDB + Redis, check the topic guarantee the same way:
 *
 *   every 2xx-answered topic publish reaches every reader whose position was before it, once per
 *   reader after dedup by message id and in topic order, unless that reader was told of a reset.
 *
 * Three gateways in this process share one store and bus (embedded: one SQLite store and the
 * in-process bus; MariaDB + Redis: a pool and Redis connections of their own, on one database and
 * prefix, as processes have). Three publishers per topic, and one whose batches span both topics,
 * send numbered singles and batches to random gateways, and lose some 2xx answers after reading
 * them, sending the same request (same ids) again. Readers start from 0 or "from now", read one
 * topic or both, by GET or POST, with a random small limit; they throw some answers away and
 * sometimes send the same positions to two gateways at once. In the middle, two gateways crash
 * (every connection cut, the engine with its held polls, tails and heads dropped) and start again;
 * on MariaDB + Redis a real `start --workers 2` gateway is a fourth endpoint, and one of its
 * workers is SIGKILLed.
 * A second run trims the topics to TRIM_HISTORY_MAX messages every second and adds slow readers
 * that fall behind the history: they must be told of the reset, never skip silently. Every
 * answer, kept or thrown away, and every reader's whole history go through checkTopicGuarantee
 * (test/support/topic-guarantee.ts). JEPSEN_BREAK_TOPIC_READS runs these cases on a store whose
 * topic reads are wrong on purpose, to see them fail.
 *
 * Randomness is seeded (printed in the summary; JEPSEN_SEED=<n> replays the same choices, the
 * timing of course differs). Each actor has its own PRNG stream, so its choices do not depend on
 * how the actors interleave.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import knexFactory from 'knex';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { seededRandom } from '../../src/bench/stats.js';
import { createRedisBus } from '../../src/bus/redis-bus.js';
import type { Bus } from '../../src/bus/types.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { createKnex, createKnexStore, type KnexStore } from '../../src/store/knex/index.js';
import { backendCases, mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { childPids, spawnGateway, type GatewayProcess } from '../support/process.js';
import { BROKEN_TOPIC_READS, checkTopicGuarantee, withBrokenTopicReads, type BrokenTopicReads, type TopicAck, type TopicRead, type TopicReaderHistory } from '../support/topic-guarantee.js';

/** A random endpoint of the run, other than `avoid` when there is another. */
function pickEndpointOf(endpoints: readonly string[], rng: () => number, avoid?: string): string {
  const choices = endpoints.filter((url) => url !== avoid);
  const pool = choices.length > 0 ? choices : endpoints;
  return pool[Math.floor(rng() * pool.length)]!;
}

/** One request of a run's clients, its whole body read: a "lost" response is lost by the client, after the server sent it. */
async function callGateway(agent: Agent, method: 'GET' | 'POST', url: string, token: string, timeoutMs: number, body?: unknown): Promise<{ status: number; text: string }> {
  const response = await request(url, {
    method,
    dispatcher: agent,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.body.text();
  return { status: response.statusCode, text };
}

const realCases = mysqlRedisCases('jepsen delivery guarantee');

// ---- Load and faults (tuned to fail reliably on a store that acks unseen rows, in < 60 s on 2 cores).
const MAILBOXES = 5;
const PUBLISHERS_PER_MAILBOX = 3;
const PUBLISH_MS = 25_000;
const DRAIN_MS = 15_000;
/** Pause between one publisher's requests, uniform in [0, this). */
const PUBLISH_PAUSE_MS = 40;
/**
 * Flow control, so the drain stays short on any machine: while a mailbox has more than this many
 * acknowledged messages its receiver has not seen, its publishers wait (at most BACKLOG_WAIT_MS per
 * request, so messages acked unseen, which never arrive, only slow publishing down).
 */
const BACKLOG_CAP = 150;
const BACKLOG_WAIT_MS = 500;
const BATCH_SHARE = 0.5;
const BATCH_MIN = 2;
const BATCH_MAX = 5;
const LIMIT_MIN = 1;
const LIMIT_MAX = 3;
const POLL_WAIT_S = 1;
const DROP_RESPONSE = 0.3;
const DOUBLE_POLL = 0.25;
const KILL_GATEWAY_AT = 0.35;
const KILL_WORKER_AT = 0.65;
const PUBLISH_ATTEMPTS = 12;
const PUBLISH_TIMEOUT_MS = 5_000;
/**
 * After publishing ended, this many poll rounds in a row answered only empty (held for `wait`, not
 * superseded) mean the server holds nothing unacked for the mailbox: whatever is still missing was
 * acked unseen and will never come, so the receiver stops before the drain deadline.
 */
const EMPTY_ROUNDS_TO_STOP = 3;

const SEED = process.env.JEPSEN_SEED ? Number(process.env.JEPSEN_SEED) >>> 0 : Date.now() >>> 0;
if (process.env.JEPSEN_SEED && !/^\d+$/.test(process.env.JEPSEN_SEED)) throw new Error(`JEPSEN_SEED must be a non-negative integer, got ${process.env.JEPSEN_SEED}`);


/** One PRNG stream per actor (FNV-1a of its name mixed into the seed). */
function rngFor(actor: string): () => number {
  let h = 0x811c9dc5;
  for (let i = 0; i < actor.length; i++) h = Math.imul(h ^ actor.charCodeAt(i), 0x01000193);
  return seededRandom((SEED ^ h) >>> 0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Published {
  clientId: string;
  mailbox: string;
  sender: string;
  n: number;
  serverId: number;
}

interface PollMessage {
  id: number;
  from: string;
  body: { s?: unknown; n?: unknown } | null;
}

interface PollAnswer {
  messages: PollMessage[];
  cursor: number;
  superseded?: boolean;
}

describe.skipIf(realCases.length === 0)('jepsen: delivery guarantee across processes, workers, lost responses and restarts', () => {
  // Made before the gateways start and cleaned up after they stop (afterAll hooks run in reverse).
  const backend = useBackend(() => realCases[0]!.make());
  let env: Record<string, string>;
  const gateways: GatewayProcess[] = [];
  /** [single A, single B, --workers 2]; A's slot is replaced when it is restarted. */
  const endpoints: string[] = [];
  let workersGateway: GatewayProcess;
  let singleA: GatewayProcess;
  const agent = new Agent({ connections: 128, keepAliveTimeout: 4_000, connect: { timeout: 2_000 } });
  const issuer = createTokenIssuer({ secret: TEST_SECRET });

  beforeAll(async () => {
    env = {
      ...(await backend.gatewayEnv()),
      // The test publishes far above the default per-sender and per-address limits on purpose.
      PUBLISH_RATE_PER_USER: '0',
      PUBLISH_RATE_PER_IP: '0',
      SHUTDOWN_GRACE_MS: '3000',
    };
    const started = await Promise.all([spawnGateway(env), spawnGateway(env), spawnGateway(env, { args: ['--workers', '2'] })]);
    gateways.push(...started);
    [singleA, , workersGateway] = started as [GatewayProcess, GatewayProcess, GatewayProcess];
    endpoints.push(...started.map((g) => g.url));
  });

  afterAll(async () => {
    const live = gateways.filter((g) => g.child.exitCode === null && g.child.signalCode === null);
    const workerPids = live.flatMap((g) => (g.child.pid ? childPids(g.child.pid) : []));
    await Promise.race([Promise.all(live.map((g) => g.stop('SIGTERM'))), sleep(6_000)]);
    for (const g of live) if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
    for (const pid of workerPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await agent.destroy().catch(() => {});
  });

  it('delivers every acknowledged publish at least once and each sender in order', async () => {
    const t0 = Date.now();
    const tokens = new Map<string, string>();
    const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => `jr-${i}`);
    const sendersOf = new Map(mailboxes.map((m, i) => [m, Array.from({ length: PUBLISHERS_PER_MAILBOX }, (_, j) => `js-${i}-${j}`)]));
    for (const user of [...mailboxes, ...[...sendersOf.values()].flat()]) tokens.set(user, await issuer.issue(user));

    const stats = { publishRequests: 0, publishRetries: 0, polls: 0, pollRequests: 0, pollErrors: 0, dropped: 0, doubled: 0, backpressureWaits: 0, kills: 0, workerReplaced: false };
    const fatal: string[] = [];
    /** Every acknowledged (2xx-answered) publish, by client id. */
    const acknowledged = new Map<string, Published>();
    const acknowledgedTo = new Map<string, Published[]>(mailboxes.map((m) => [m, []]));
    /** Every (sender, n) we ever tried to publish: to tell phantoms from unacknowledged attempts. */
    const attempted = new Set<string>();
    let publishing = true;
    const publishEnd = t0 + PUBLISH_MS;
    let publishEndedAt = 0;
    let drainDeadline = Infinity;

    const pickEndpoint = (rng: () => number, avoid?: string) => pickEndpointOf(endpoints, rng, avoid);
    const call = (method: 'GET' | 'POST', url: string, token: string, timeoutMs: number, body?: unknown) => callGateway(agent, method, url, token, timeoutMs, body);

    // ---- Publishers: each sends its own sequence, strictly one request at a time.
    async function publisher(mailbox: string, sender: string): Promise<void> {
      const rng = rngFor(`pub:${sender}`);
      const token = tokens.get(sender)!;
      let n = 1;
      while (Date.now() < publishEnd && fatal.length === 0) {
        const size = rng() < BATCH_SHARE ? BATCH_MIN + Math.floor(rng() * (BATCH_MAX - BATCH_MIN + 1)) : 1;
        const items = Array.from({ length: size }, (_, k) => ({ to: mailbox, id: `${sender}-${n + k}`, body: { s: sender, n: n + k } }));
        for (const item of items) attempted.add(item.id);
        const path = size === 1 ? '/v1/messages' : '/v1/messages/batch';
        const payload = size === 1 ? items[0] : { messages: items };
        let ids: number[] | undefined;
        let last: string | undefined;
        for (let attempt = 0; attempt < PUBLISH_ATTEMPTS && !ids; attempt++) {
          if (attempt > 0) {
            stats.publishRetries++;
            await sleep(10 + Math.floor(rng() * 60));
          }
          const url = pickEndpoint(rng, last);
          last = url;
          stats.publishRequests++;
          let answer: { status: number; text: string };
          try {
            answer = await call('POST', `${url}${path}`, token, PUBLISH_TIMEOUT_MS, payload);
          } catch {
            continue; // connection refused / reset / timeout: the same request goes elsewhere
          }
          if (answer.status >= 500 || answer.status === 429) continue;
          if (answer.status < 200 || answer.status >= 300) {
            fatal.push(`publish ${items[0]!.id} (+${size - 1}) answered ${answer.status}: ${answer.text.slice(0, 200)}`);
            return;
          }
          const parsed = JSON.parse(answer.text) as { id?: number; results?: Array<{ id: number }> };
          ids = size === 1 ? [Number(parsed.id)] : (parsed.results ?? []).map((r) => Number(r.id));
          if (ids.length !== size || ids.some((id) => !Number.isSafeInteger(id) || id <= 0)) {
            fatal.push(`publish ${items[0]!.id} answered ${answer.status} with unusable ids: ${answer.text.slice(0, 200)}`);
            return;
          }
        }
        // Never 2xx-answered: not counted, and this sender stops (a later number must not overtake it).
        if (!ids) return;
        items.forEach((item, k) => {
          const published = { clientId: item.id, mailbox, sender, n: item.body.n, serverId: ids![k]! };
          acknowledged.set(item.id, published);
          acknowledgedTo.get(mailbox)!.push(published);
        });
        n += size;
        if (PUBLISH_PAUSE_MS > 0) await sleep(Math.floor(rng() * PUBLISH_PAUSE_MS));
        for (let waited = 0; backlog(mailbox) > BACKLOG_CAP && waited < BACKLOG_WAIT_MS && Date.now() < publishEnd; waited += 25) {
          stats.backpressureWaits++;
          await sleep(25);
        }
      }
    }

    // ---- Receivers: one per mailbox, the client side of the guarantee.
    const received = new Map<string, Map<number, { s: string; n: number }>>(mailboxes.map((m) => [m, new Map()]));
    const firstReceiptOrder = new Map<string, number[]>(); // by sender: n in order of first receipt
    const phantoms: string[] = [];
    let duplicatesReceived = 0;
    const backlogAtPublishEnd = new Map<string, number>();

    function missingFor(mailbox: string): Published[] {
      const got = received.get(mailbox)!;
      return acknowledgedTo.get(mailbox)!.filter((p) => !got.has(p.serverId));
    }
    const backlog = (mailbox: string) => acknowledgedTo.get(mailbox)!.length - received.get(mailbox)!.size;

    function record(mailbox: string, answer: PollAnswer): void {
      const got = received.get(mailbox)!;
      for (const m of answer.messages) {
        const s = typeof m.body?.s === 'string' ? m.body.s : undefined;
        const n = typeof m.body?.n === 'number' ? m.body.n : undefined;
        const clientId = `${s}-${n}`;
        if (s === undefined || n === undefined || !attempted.has(clientId) || m.from !== s || !sendersOf.get(mailbox)!.includes(s)) {
          phantoms.push(`${mailbox} got id ${m.id} from ${m.from}: ${JSON.stringify(m.body)}`);
          continue;
        }
        if (got.has(m.id)) {
          duplicatesReceived++;
          continue;
        }
        got.set(m.id, { s, n });
        const order = firstReceiptOrder.get(s) ?? [];
        order.push(n);
        firstReceiptOrder.set(s, order);
      }
    }

    async function pollOnce(url: string, token: string, cursor: number, limit: number): Promise<PollAnswer | undefined> {
      stats.pollRequests++;
      try {
        const answer = await call('GET', `${url}/v1/poll?cursor=${cursor}&wait=${POLL_WAIT_S}&limit=${limit}`, token, POLL_WAIT_S * 1000 + 5_000);
        if (answer.status === 200) return JSON.parse(answer.text) as PollAnswer;
        if (answer.status >= 500 || answer.status === 429) {
          stats.pollErrors++;
          return undefined;
        }
        fatal.push(`poll ${url} cursor=${cursor} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
        return undefined;
      } catch {
        stats.pollErrors++;
        return undefined;
      }
    }

    async function receiver(mailbox: string): Promise<void> {
      const rng = rngFor(`recv:${mailbox}`);
      const token = tokens.get(mailbox)!;
      let cursor = 0;
      let emptyRoundsInARow = 0;
      for (;;) {
        if (fatal.length > 0 || Date.now() > drainDeadline) return;
        if (!publishing) {
          if (!backlogAtPublishEnd.has(mailbox)) backlogAtPublishEnd.set(mailbox, missingFor(mailbox).length);
          if (missingFor(mailbox).length === 0) return;
          // Nothing unacked is left on the server: whatever is still missing was acked unseen.
          if (emptyRoundsInARow >= EMPTY_ROUNDS_TO_STOP) return;
        }
        const afterPublishing = !publishing;
        stats.polls++;
        const limitOf = () => LIMIT_MIN + Math.floor(rng() * (LIMIT_MAX - LIMIT_MIN + 1));
        let kept: PollAnswer | undefined;
        const answers: Array<PollAnswer | undefined> = [];
        if (rng() < DOUBLE_POLL && endpoints.length > 1) {
          // The same cursor to two endpoints at once; the client keeps one answer and never sees the other.
          stats.doubled++;
          const first = pickEndpoint(rng);
          const second = pickEndpoint(rng, first);
          const keepFirst = rng() < 0.5;
          const both = await Promise.all([pollOnce(first, token, cursor, limitOf()), pollOnce(second, token, cursor, limitOf())]);
          answers.push(...both);
          kept = keepFirst ? both[0] : both[1];
          if (both[keepFirst ? 1 : 0]) stats.dropped++;
        } else {
          kept = await pollOnce(pickEndpoint(rng), token, cursor, limitOf());
          answers.push(kept);
        }
        if (kept && rng() < DROP_RESPONSE) {
          stats.dropped++;
          kept = undefined; // read in full, then lost
        }
        if (afterPublishing) {
          const emptyRound = answers.every((a) => a && !a.superseded && a.messages.length === 0);
          emptyRoundsInARow = emptyRound ? emptyRoundsInARow + 1 : 0;
        }
        if (!answers.some(Boolean)) await sleep(20 + Math.floor(rng() * 80));
        if (!kept) continue;
        record(mailbox, kept);
        cursor = kept.cursor;
      }
    }

    // ---- Faults, in the middle of the publish phase.
    const faults = (async () => {
      await sleep(PUBLISH_MS * KILL_GATEWAY_AT);
      const index = endpoints.indexOf(singleA.url);
      await singleA.stop('SIGKILL');
      stats.kills++;
      const restarted = await spawnGateway(env);
      gateways.push(restarted);
      endpoints[index] = restarted.url;
      singleA = restarted;

      await sleep(Math.max(0, t0 + PUBLISH_MS * KILL_WORKER_AT - Date.now()));
      const primary = workersGateway.child.pid!;
      const before = childPids(primary);
      if (before.length !== 2) {
        fatal.push(`the --workers 2 gateway runs ${before.length} workers, expected 2`);
        return;
      }
      process.kill(before[0]!, 'SIGKILL');
      stats.kills++;
      for (let i = 0; i < 100 && !stats.workerReplaced; i++) {
        await sleep(100);
        const now = childPids(primary);
        stats.workerReplaced = now.length === 2 && !now.includes(before[0]!);
      }
    })().catch((error: unknown) => {
      fatal.push(`fault injection failed: ${(error as Error).message}`);
    });

    const publishers = Promise.all(mailboxes.flatMap((m) => sendersOf.get(m)!.map((s) => publisher(m, s)))).then(() => {
      publishing = false;
      publishEndedAt = Date.now();
      drainDeadline = publishEndedAt + DRAIN_MS;
    });
    const receivers = Promise.all(mailboxes.map((m) => receiver(m)));
    await Promise.all([publishers, receivers, faults]);
    const tEnd = Date.now();

    // ---- Verdict.
    const lost = mailboxes.flatMap((m) => missingFor(m));
    // A message may arrive before its publisher read the 2xx, so the server id is checked only now:
    // one (sender, n) stored under a second id would be a duplicate the client cannot dedup.
    for (const [mailbox, got] of received) {
      for (const [id, { s, n }] of got) {
        const ack = acknowledged.get(`${s}-${n}`);
        if (ack && ack.serverId !== id) phantoms.push(`${mailbox} got ${s}-${n} as id ${id}, published as id ${ack.serverId}`);
      }
    }
    const orderViolations: string[] = [];
    for (const [sender, order] of firstReceiptOrder) {
      for (let i = 1; i < order.length; i++) {
        if (order[i]! <= order[i - 1]!) {
          orderViolations.push(`${sender}: n=${order[i]} received after n=${order[i - 1]}`);
          break;
        }
      }
    }
    // Diagnostic only: were the missing rows acked on the server (acked unseen) or still unacked (drain ran out)?
    const statusOfLost = new Map<string, number>();
    if (lost.length > 0) {
      const db = knexFactory({ client: 'mysql2', connection: env.MYSQL_URL!, pool: { min: 0, max: 1 } });
      try {
        const rows = (await db('messages')
          .whereIn(
            'id',
            lost.slice(0, 5000).map((p) => p.serverId),
          )
          .select('status')) as Array<{ status: string }>;
        for (const row of rows) statusOfLost.set(row.status, (statusOfLost.get(row.status) ?? 0) + 1);
      } catch (error) {
        statusOfLost.set(`query failed: ${(error as Error).message}`, 1);
      } finally {
        await db.destroy();
      }
    }
    const receivedCount = [...received.values()].reduce((sum, m) => sum + m.size, 0);
    const lostBySender = new Map<string, number>();
    for (const p of lost) lostBySender.set(p.sender, (lostBySender.get(p.sender) ?? 0) + 1);
    const summary =
      `[jepsen] seed=${SEED} published=${acknowledged.size} received=${receivedCount} duplicates=${duplicatesReceived} ` +
      `lost=${lost.length} orderViolations=${orderViolations.length} phantoms=${phantoms.length} ` +
      `polls=${stats.polls} pollRequests=${stats.pollRequests} pollErrors=${stats.pollErrors} dropped=${stats.dropped} doubled=${stats.doubled} backpressureWaits=${stats.backpressureWaits} ` +
      `publishRequests=${stats.publishRequests} publishRetries=${stats.publishRetries} kills=${stats.kills} workerReplaced=${stats.workerReplaced} ` +
      `backlogAtPublishEnd=${[...backlogAtPublishEnd.values()].reduce((a, b) => a + b, 0)} ` +
      `publish=${((publishEndedAt - t0) / 1000).toFixed(1)}s drain=${((tEnd - publishEndedAt) / 1000).toFixed(1)}s` +
      (lost.length > 0 ? ` lostServerStatus=${JSON.stringify(Object.fromEntries(statusOfLost))}` : '');
    console.log(summary);

    const details = [
      summary,
      ...fatal.slice(0, 5).map((f) => `fatal: ${f}`),
      ...lost.slice(0, 10).map((p) => `lost: ${p.clientId} (server id ${p.serverId}) to ${p.mailbox}`),
      lost.length > 0 ? `lost by sender: ${JSON.stringify(Object.fromEntries(lostBySender))}` : '',
      ...orderViolations.slice(0, 5).map((v) => `order: ${v}`),
      ...phantoms.slice(0, 5).map((p) => `phantom: ${p}`),
      `replay with JEPSEN_SEED=${SEED}`,
    ]
      .filter(Boolean)
      .join('\n');

    expect(fatal, details).toEqual([]);
    expect(stats.kills, details).toBe(2);
    expect(acknowledged.size, details).toBeGreaterThan(500);
    expect(lost.length, details).toBe(0);
    expect(orderViolations, details).toEqual([]);
    expect(phantoms, details).toEqual([]);
  }, 50_000);
});

// ---- Topics: the topic guarantee, on the embedded defaults and on MariaDB + Redis.

const TOPICS = 2;
/** Publishers per topic; one more publishes batches that span both topics. */
const TOPIC_PUBLISHERS = 3;
const TOPIC_PUBLISH_MS = 8_000;
const TOPIC_DRAIN_MS = 8_000;
/** While a prompt reader of a topic lags more than this many acknowledged messages, its publishers wait (at most BACKLOG_WAIT_MS per request). */
const TOPIC_BACKLOG_CAP = 40;
/** Share of 2xx publish answers the publisher reads and then loses, retrying the same request. */
const DROP_PUBLISH_RESPONSE = 0.2;
/** When gateway 0 and then gateway 1 crash (and start again), as shares of the publish phase. */
const TOPIC_CRASHES_AT = [0.35, 0.65];
/** When a worker of the spawned `--workers 2` gateway (MariaDB + Redis only) is SIGKILLed. */
const TOPIC_WORKER_KILL_AT = 0.5;
/** The trimming run keeps this many messages per topic, trimmed every second by every gateway. */
const TRIM_HISTORY_MAX = 25;
/** A slow reader pauses up to this long between polls while publishing goes on. */
const SLOW_READER_PAUSE_MS = 1_500;
const MIN_TOPIC_ACKS = 150;

/**
 * JEPSEN_BREAK_TOPIC_READS=<variant> runs the topic cases on a store whose topic reads are wrong
 * on purpose (`seq >= position`, `no reset`): the cases must then fail, which shows they can.
 */
const BREAK_TOPIC_READS = process.env.JEPSEN_BREAK_TOPIC_READS as BrokenTopicReads | undefined;
if (BREAK_TOPIC_READS !== undefined && !BROKEN_TOPIC_READS.includes(BREAK_TOPIC_READS)) {
  throw new Error(`JEPSEN_BREAK_TOPIC_READS must be one of ${BROKEN_TOPIC_READS.map((b) => `"${b}"`).join(', ')}, got "${BREAK_TOPIC_READS}"`);
}

interface TopicReaderSpec {
  name: string;
  /** Indices into the run's topics. */
  topics: readonly number[];
  /** `0` reads the whole history; `now` joins at the head (a short poll) at `startAt` of the publish phase. */
  start: '0' | 'now';
  startAt: number;
  via: 'GET' | 'POST';
  /** Pauses between polls while publishing goes on (and so falls behind a trimmed history); never slows publishers down. */
  slow: boolean;
}

interface TopicPollAnswer {
  messages: Array<{ id: number; from: string; body: { s?: unknown; n?: unknown } | null; topic?: string; seq?: number }>;
  cursor: number;
  positions?: Record<string, number>;
  resets?: Array<{ topic: string; earliest: number }>;
  superseded?: boolean;
}

/** A gateway of the run: in this process, with its own server (and, on MariaDB + Redis, its own pool and Redis connections). */
interface TopicNode {
  url: string;
  server: Server;
  gateway: Gateway<KnexStore>;
  closeParts(): Promise<void>;
}

const quietLogger = { info() {}, warn() {}, error() {}, isLevelEnabled: () => false };

describe.each(backendCases('jepsen topic delivery guarantee'))('jepsen: topic guarantee on $name across gateways, lost responses and crashes', ({ make }) => {
  const backend = useBackend(make);
  const agent = new Agent({ connections: 64, keepAliveTimeout: 4_000, connect: { timeout: 2_000 } });
  const issuer = createTokenIssuer({ secret: TEST_SECRET });
  let scenario = 0;

  afterAll(async () => {
    await agent.destroy().catch(() => {});
  });

  /**
   * Three gateways on one store and one bus: on the embedded defaults they share the store and the
   * in-process bus (as workers of one process would share a database), on MariaDB + Redis each has
   * its own pool and Redis connections on one database and prefix, as separate processes do. A
   * crash cuts every connection of a gateway at once (responses in flight are lost, commits in
   * flight may still land) and drops its engine with its held polls, tails and known heads. On
   * MariaDB + Redis a fourth endpoint is a real `start --workers 2` gateway on the same database
   * and prefix, configured from the environment (TOPIC_HISTORY_MAX, RETENTION_INTERVAL_S), one of
   * whose workers is SIGKILLed in the middle.
   */
  async function startCluster(trim: boolean) {
    const env = backend.real ? await backend.gatewayEnv() : undefined;
    const workers = env
      ? await spawnGateway(
          {
            ...env,
            PUBLISH_RATE_PER_USER: '0',
            PUBLISH_RATE_PER_IP: '0',
            SHUTDOWN_GRACE_MS: '2000',
            RETENTION_ACKED_HOURS: '0',
            ...(trim ? { TOPIC_HISTORY_MAX: String(TRIM_HISTORY_MAX), RETENTION_INTERVAL_S: '1' } : {}),
          },
          { args: ['--workers', '2'] },
        )
      : undefined;
    const shared = backend.real ? undefined : { store: await backend.createStore(), bus: await backend.createBus() };
    async function parts(): Promise<{ store: KnexStore; bus: Bus; close(): Promise<void> }> {
      if (shared) return { ...shared, close: async () => {} };
      const store = await createKnexStore({ knex: createKnex({ mysqlUrl: env!.MYSQL_URL! }) });
      const bus = await createRedisBus({ url: env!.REDIS_URL!, prefix: env!.REDIS_PREFIX! });
      return {
        store,
        bus,
        async close() {
          await Promise.allSettled([bus.close(), store.close()]);
        },
      };
    }
    async function startNode(): Promise<TopicNode> {
      const made = await parts();
      const store = BREAK_TOPIC_READS ? withBrokenTopicReads(made.store, BREAK_TOPIC_READS) : made.store;
      const gateway = await createGateway(
        { store, bus: made.bus, logger: quietLogger },
        {
          auth: { jwtSecret: TEST_SECRET },
          // Far above the default per-sender and per-address limits, on purpose.
          rateLimit: { perUser: { ratePerSecond: 0, burst: 1 }, perIp: { ratePerSecond: 0, burst: 1 } },
          retention: trim ? { ackedHours: 0, topicHistoryMax: TRIM_HISTORY_MAX, intervalSeconds: 1 } : { ackedHours: 0 },
        },
      );
      const server = createServer(gateway.callback);
      server.keepAliveTimeout = 5_000;
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, gateway, closeParts: made.close };
    }
    async function crash(node: TopicNode): Promise<void> {
      node.server.closeAllConnections();
      node.server.close();
      await node.gateway.close();
      await node.closeParts();
    }
    async function stopWorkers(): Promise<void> {
      if (!workers || workers.child.exitCode !== null || workers.child.signalCode !== null) return;
      const workerPids = childPids(workers.child.pid!);
      await Promise.race([workers.stop('SIGTERM'), sleep(4_000)]);
      for (const pid of [workers.child.pid!, ...workerPids]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // The first gateway (or the spawned one) migrates the database; the others find it migrated.
    const nodes = [await startNode()];
    nodes.push(...(await Promise.all([startNode(), startNode()])));
    return { nodes, workers, startNode, crash, stopWorkers, knex: () => nodes[nodes.length - 1]!.gateway.store.knex };
  }

  type Cluster = Awaited<ReturnType<typeof startCluster>>;

  async function runTopicScenario(trim: boolean) {
    const cluster = await startCluster(trim);
    try {
      return await exercise(cluster, trim);
    } finally {
      await Promise.allSettled([...cluster.nodes.map((node) => cluster.crash(node)), cluster.stopWorkers()]);
    }
  }

  async function exercise(cluster: Cluster, trim: boolean) {
    scenario += 1;
    const tag = `${trim ? 'trim' : 'keep'}${scenario}`;
    const { nodes, workers } = cluster;
    const endpoints = [...nodes.map((node) => node.url), ...(workers ? [workers.url] : [])];
    const t0 = Date.now();
    const publishEnd = t0 + TOPIC_PUBLISH_MS;
    let publishing = true;
    let publishEndedAt = 0;
    let drainDeadline = Infinity;

    const topicNames = Array.from({ length: TOPICS }, (_, i) => `jt-${tag}-${i}`);
    const publisherSpecs = [
      ...topicNames.flatMap((_, t) => Array.from({ length: TOPIC_PUBLISHERS }, (_, j) => ({ sender: `jtp-${tag}-${t}-${j}`, topics: [t] }))),
      { sender: `jtp-${tag}-both`, topics: topicNames.map((_, t) => t) },
    ];
    const readerSpecs: TopicReaderSpec[] = [
      { name: `jtr-${tag}-0`, topics: [0], start: '0', startAt: 0, via: 'GET', slow: false },
      { name: `jtr-${tag}-1`, topics: [1], start: '0', startAt: 0, via: 'POST', slow: false },
      { name: `jtr-${tag}-both`, topics: [0, 1], start: '0', startAt: 0, via: 'POST', slow: false },
      { name: `jtr-${tag}-now0`, topics: [0], start: 'now', startAt: 0.2, via: 'GET', slow: false },
      { name: `jtr-${tag}-now-both`, topics: [0, 1], start: 'now', startAt: 0.5, via: 'POST', slow: false },
      ...(trim
        ? ([
            { name: `jtr-${tag}-slow0`, topics: [0], start: '0', startAt: 0, via: 'GET', slow: true },
            { name: `jtr-${tag}-slow-both`, topics: [0, 1], start: '0', startAt: 0.3, via: 'POST', slow: true },
          ] satisfies TopicReaderSpec[])
        : []),
    ];
    const tokens = new Map<string, string>();
    for (const user of [...publisherSpecs.map((p) => p.sender), ...readerSpecs.map((r) => r.name)]) {
      tokens.set(user, await issuer.issue(user, { topics: { 'jt-*': ['read', 'publish'] } }));
    }

    const stats = { publishRequests: 0, publishRetries: 0, publishDropped: 0, polls: 0, pollRequests: 0, pollErrors: 0, dropped: 0, doubled: 0, backpressureWaits: 0, crashes: 0, workerKilled: false };
    const fatal: string[] = [];
    const acks: TopicAck[] = [];
    const attempted = new Map<string, { topic: string; sender: string }>();
    const headOf = new Map<string, number>(topicNames.map((name) => [name, 0]));
    const histories: TopicReaderHistory[] = [];
    /** Where each prompt reader stands, for the publishers' flow control. */
    const promptPositions = new Map<string, Map<string, number>>();

    const pickEndpoint = (rng: () => number, avoid?: string) => pickEndpointOf(endpoints, rng, avoid);
    const call = (method: 'GET' | 'POST', url: string, token: string, timeoutMs: number, body?: unknown) => callGateway(agent, method, url, token, timeoutMs, body);

    function lagOf(topic: string): number {
      let lowest = Infinity;
      for (const positions of promptPositions.values()) {
        const position = positions.get(topic);
        if (position !== undefined) lowest = Math.min(lowest, position);
      }
      return lowest === Infinity ? 0 : headOf.get(topic)! - lowest;
    }

    // ---- Publishers: numbered messages, one request at a time, the same request again after any failure or lost answer.
    async function publisher(spec: { sender: string; topics: number[] }): Promise<void> {
      const rng = rngFor(`tpub:${tag}:${spec.sender}`);
      const token = tokens.get(spec.sender)!;
      let n = 1;
      while (Date.now() < publishEnd && fatal.length === 0) {
        const size = rng() < BATCH_SHARE ? BATCH_MIN + Math.floor(rng() * (BATCH_MAX - BATCH_MIN + 1)) : 1;
        const items = Array.from({ length: size }, (_, k) => ({
          topic: topicNames[spec.topics[(n + k) % spec.topics.length]!]!,
          id: `${spec.sender}-${n + k}`,
          body: { s: spec.sender, n: n + k },
        }));
        for (const item of items) attempted.set(item.id, { topic: item.topic, sender: spec.sender });
        const path = size === 1 ? '/v1/messages' : '/v1/messages/batch';
        const payload = size === 1 ? items[0] : { messages: items };
        let kept = false;
        let last: string | undefined;
        for (let attempt = 0; attempt < PUBLISH_ATTEMPTS && !kept; attempt++) {
          if (attempt > 0) {
            stats.publishRetries++;
            await sleep(10 + Math.floor(rng() * 60));
          }
          const url = pickEndpoint(rng, last);
          last = url;
          stats.publishRequests++;
          let answer: { status: number; text: string };
          try {
            answer = await call('POST', `${url}${path}`, token, PUBLISH_TIMEOUT_MS, payload);
          } catch {
            continue; // refused, reset or timed out: the same request goes elsewhere
          }
          if (answer.status >= 500 || answer.status === 429) continue;
          if (answer.status < 200 || answer.status >= 300) {
            fatal.push(`publish ${items[0]!.id} (+${size - 1}) answered ${answer.status}: ${answer.text.slice(0, 200)}`);
            return;
          }
          const parsed = JSON.parse(answer.text) as { id?: number; seq?: number; results?: Array<{ id: number; seq: number }> };
          const answered = size === 1 ? [{ id: Number(parsed.id), seq: Number(parsed.seq) }] : (parsed.results ?? []).map((r) => ({ id: Number(r.id), seq: Number(r.seq) }));
          if (answered.length !== size || answered.some((a) => !Number.isSafeInteger(a.id) || a.id <= 0 || !Number.isSafeInteger(a.seq) || a.seq <= 0)) {
            fatal.push(`publish ${items[0]!.id} answered ${answer.status} without usable ids and seqs: ${answer.text.slice(0, 200)}`);
            return;
          }
          // Every 2xx counts, kept or not: the server said the message is stored.
          items.forEach((item, k) => {
            acks.push({ clientId: item.id, topic: item.topic, sender: spec.sender, n: item.body.n, id: answered[k]!.id, seq: answered[k]!.seq });
            headOf.set(item.topic, Math.max(headOf.get(item.topic)!, answered[k]!.seq));
          });
          if (rng() < DROP_PUBLISH_RESPONSE) {
            stats.publishDropped++;
            continue; // read in full, then lost: the publisher sends it again
          }
          kept = true;
        }
        // Never kept: this sender stops (a later number must not overtake it).
        if (!kept) return;
        n += size;
        if (PUBLISH_PAUSE_MS > 0) await sleep(Math.floor(rng() * PUBLISH_PAUSE_MS));
        for (let waited = 0; items.some((item) => lagOf(item.topic) > TOPIC_BACKLOG_CAP) && waited < BACKLOG_WAIT_MS && Date.now() < publishEnd; waited += 25) {
          stats.backpressureWaits++;
          await sleep(25);
        }
      }
    }

    // ---- Readers: each holds its own positions and sends them back; the answers they lose or throw away are checked too.
    async function pollTopics(url: string, token: string, via: 'GET' | 'POST', sent: ReadonlyMap<string, number | null>, wait: number, limit: number): Promise<TopicPollAnswer | undefined> {
      stats.pollRequests++;
      try {
        const query = [...sent].map(([name, position]) => `topic=${name}${position === null ? '' : `@${position}`}`).join('&');
        const answer =
          via === 'GET'
            ? await call('GET', `${url}/v1/poll?cursor=0&wait=${wait}&limit=${limit}&${query}`, token, wait * 1000 + 5_000)
            : await call('POST', `${url}/v1/poll`, token, wait * 1000 + 5_000, { cursor: 0, wait, limit, topics: Object.fromEntries(sent) });
        if (answer.status === 200) return JSON.parse(answer.text) as TopicPollAnswer;
        if (answer.status >= 500 || answer.status === 429) {
          stats.pollErrors++;
          return undefined;
        }
        fatal.push(`poll ${url} ${query} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
        return undefined;
      } catch {
        stats.pollErrors++;
        return undefined;
      }
    }

    async function reader(spec: TopicReaderSpec): Promise<void> {
      const rng = rngFor(`trd:${tag}:${spec.name}`);
      const token = tokens.get(spec.name)!;
      const names = spec.topics.map((t) => topicNames[t]!);
      const historyOf = new Map(names.map((name): [string, TopicReaderHistory] => [name, { reader: spec.name, topic: name, reads: [] }]));
      histories.push(...historyOf.values());
      await sleep(Math.max(0, t0 + TOPIC_PUBLISH_MS * spec.startAt - Date.now()));
      const positions = new Map<string, number | null>(names.map((name) => [name, spec.start === '0' ? 0 : null]));
      const prompt = spec.slow ? undefined : new Map<string, number>();
      if (prompt) promptPositions.set(spec.name, prompt);

      function record(answer: TopicPollAnswer, sent: ReadonlyMap<string, number | null>, kept: boolean): void {
        for (const message of answer.messages) {
          if (message.topic === undefined || !names.includes(message.topic)) fatal.push(`${spec.name} got a message of ${message.topic ?? 'its mailbox'}: ${JSON.stringify(message).slice(0, 200)}`);
        }
        for (const name of names) {
          const position = answer.positions?.[name];
          if (position === undefined) {
            fatal.push(`${spec.name}: an answer without a position for ${name}: ${JSON.stringify(answer).slice(0, 200)}`);
            continue;
          }
          historyOf.get(name)!.reads.push({
            kept,
            sent: sent.get(name)!,
            messages: answer.messages
              .filter((m) => m.topic === name)
              .map((m) => ({
                id: m.id,
                seq: Number(m.seq),
                clientId: typeof m.body?.s === 'string' && typeof m.body.n === 'number' ? `${m.body.s}-${m.body.n}` : undefined,
                from: m.from,
              })),
            position,
            earliest: answer.resets?.find((reset) => reset.topic === name)?.earliest,
          });
          if (kept) {
            positions.set(name, position);
            prompt?.set(name, position);
          }
        }
      }

      for (;;) {
        if (fatal.length > 0 || Date.now() > drainDeadline) return;
        if (!publishing && names.every((name) => (positions.get(name) ?? -1) >= headOf.get(name)!)) return;
        stats.polls++;
        const sent = new Map(positions);
        // Joining "from now" is a short poll: it learns where now is, and nothing else.
        const wait = [...sent.values()].includes(null) ? 0 : POLL_WAIT_S;
        const limitOf = () => LIMIT_MIN + Math.floor(rng() * (LIMIT_MAX - LIMIT_MIN + 1));
        let answers: Array<TopicPollAnswer | undefined>;
        let keptIndex = 0;
        if (rng() < DOUBLE_POLL && endpoints.length > 1) {
          // The same positions to two gateways at once; the reader keeps one answer and throws the other away.
          stats.doubled++;
          const first = pickEndpoint(rng);
          const second = pickEndpoint(rng, first);
          keptIndex = rng() < 0.5 ? 0 : 1;
          answers = await Promise.all([pollTopics(first, token, spec.via, sent, wait, limitOf()), pollTopics(second, token, spec.via, sent, wait, limitOf())]);
          if (answers[1 - keptIndex]) stats.dropped++;
        } else {
          answers = [await pollTopics(pickEndpoint(rng), token, spec.via, sent, wait, limitOf())];
        }
        if (answers[keptIndex] && rng() < DROP_RESPONSE) {
          stats.dropped++;
          keptIndex = -1; // read in full, then lost
        }
        answers.forEach((answer, index) => {
          if (answer) record(answer, sent, index === keptIndex);
        });
        if (!answers.some(Boolean)) await sleep(20 + Math.floor(rng() * 80));
        if (spec.slow && publishing) await sleep(Math.floor(rng() * SLOW_READER_PAUSE_MS));
      }
    }

    // ---- Faults: gateway 0 and then gateway 1 crash and start again, each on a new port; between them a worker of the spawned gateway is SIGKILLed.
    const crashes = (async () => {
      for (const [index, at] of TOPIC_CRASHES_AT.entries()) {
        await sleep(Math.max(0, t0 + TOPIC_PUBLISH_MS * at - Date.now()));
        await cluster.crash(nodes[index]!);
        stats.crashes++;
        nodes[index] = await cluster.startNode();
        endpoints[index] = nodes[index].url;
      }
    })();
    const workerKill = (async () => {
      if (!workers) return;
      await sleep(Math.max(0, t0 + TOPIC_PUBLISH_MS * TOPIC_WORKER_KILL_AT - Date.now()));
      const before = childPids(workers.child.pid!);
      if (before.length !== 2) throw new Error(`the --workers 2 gateway runs ${before.length} workers, expected 2`);
      process.kill(before[0]!, 'SIGKILL');
      stats.workerKilled = true;
    })();
    const faults = Promise.all([crashes, workerKill]).catch((error: unknown) => {
      fatal.push(`fault injection failed: ${(error as Error).message}`);
    });

    const publishers = Promise.all(publisherSpecs.map((spec) => publisher(spec))).then(() => {
      publishing = false;
      publishEndedAt = Date.now();
      drainDeadline = publishEndedAt + TOPIC_DRAIN_MS;
    });
    await Promise.all([publishers, Promise.all(readerSpecs.map((spec) => reader(spec))), faults]);
    const tEnd = Date.now();
    const heads = (await cluster
      .knex()('mailboxes')
      .whereIn(
        'user_id',
        topicNames.map((name) => `#${name}`),
      )
      .select('user_id', 'trimmed_seq')) as Array<{ user_id: string; trimmed_seq: number | string }>;
    const trimmedTo = new Map(heads.map((head) => [head.user_id.slice(1), Number(head.trimmed_seq)]));
    const verdict = checkTopicGuarantee({
      acks,
      attempted,
      readers: histories,
      trimmed: trim,
    });
    const summary =
      `[jepsen topics${trim ? ', trimmed' : ''}] seed=${SEED} acked=${new Set(acks.map((a) => a.clientId)).size} owed=${verdict.owed} received=${verdict.received} ` +
      `duplicates=${verdict.duplicates} resets=${verdict.resets} excused=${verdict.excused} trimmedTo=${topicNames.map((name) => trimmedTo.get(name) ?? 0).join('/')} ` +
      `violations=${verdict.violations.length} ` +
      `polls=${stats.polls} pollRequests=${stats.pollRequests} pollErrors=${stats.pollErrors} dropped=${stats.dropped} doubled=${stats.doubled} ` +
      `publishRequests=${stats.publishRequests} publishRetries=${stats.publishRetries} publishDropped=${stats.publishDropped} backpressureWaits=${stats.backpressureWaits} ` +
      `crashes=${stats.crashes} workerKilled=${stats.workerKilled} publish=${((publishEndedAt - t0) / 1000).toFixed(1)}s drain=${((tEnd - publishEndedAt) / 1000).toFixed(1)}s` +
      (BREAK_TOPIC_READS ? ` BROKEN STORE: ${BREAK_TOPIC_READS}` : '');
    console.log(summary);
    const details = [summary, ...fatal.slice(0, 5).map((f) => `fatal: ${f}`), ...verdict.violations.slice(0, 10), `replay with JEPSEN_SEED=${SEED}`].join('\n');
    return { verdict, stats, fatal, details, trimmedTo: topicNames.map((name) => trimmedTo.get(name) ?? 0), acked: new Set(acks.map((a) => a.clientId)).size };
  }

  it('delivers every acknowledged topic publish to every reader once, in topic order', async () => {
    const { verdict, stats, fatal, details, acked } = await runTopicScenario(false);
    expect(fatal, details).toEqual([]);
    expect(verdict.violations, details).toEqual([]);
    expect(stats.crashes, details).toBe(2);
    expect(stats.workerKilled, details).toBe(backend.real);
    expect(acked, details).toBeGreaterThan(MIN_TOPIC_ACKS);
    // The faults happened: answers lost on both sides and positions sent twice at once.
    expect(Math.min(stats.publishDropped, stats.dropped, stats.doubled), details).toBeGreaterThan(0);
  }, 30_000);

  it('tells readers behind a trimmed history of the reset and never lets them skip silently', async () => {
    const { verdict, stats, fatal, details, acked, trimmedTo } = await runTopicScenario(true);
    expect(fatal, details).toEqual([]);
    expect(verdict.violations, details).toEqual([]);
    expect(stats.crashes, details).toBe(2);
    expect(stats.workerKilled, details).toBe(backend.real);
    expect(acked, details).toBeGreaterThan(MIN_TOPIC_ACKS);
    // The history was trimmed under the readers, and the slow ones were told.
    expect(trimmedTo, details).toHaveLength(TOPICS);
    expect(Math.min(...trimmedTo), details).toBeGreaterThan(0);
    expect(verdict.resets, details).toBeGreaterThan(0);
    expect(verdict.excused, details).toBeGreaterThan(0);
  }, 30_000);
});

describe('the topic guarantee checker', () => {
  const attempted = new Map(['a-1', 'a-2', 'a-3', 'b-1'].map((id) => [id, { topic: 't', sender: id.split('-')[0]! }]));
  const acks: TopicAck[] = [
    { clientId: 'a-1', topic: 't', sender: 'a', n: 1, id: 11, seq: 1 },
    { clientId: 'a-2', topic: 't', sender: 'a', n: 2, id: 12, seq: 2 },
    { clientId: 'b-1', topic: 't', sender: 'b', n: 1, id: 13, seq: 3 },
    { clientId: 'a-3', topic: 't', sender: 'a', n: 3, id: 14, seq: 4 },
  ];
  const message = (clientId: string) => {
    const ack = acks.find((a) => a.clientId === clientId)!;
    return { id: ack.id, seq: ack.seq, clientId, from: ack.sender };
  };
  const read = (sent: number | null, clientIds: string[], position: number, extra: Partial<TopicRead> = {}): TopicRead => ({ kept: true, sent, messages: clientIds.map(message), position, ...extra });
  const check = (reads: TopicRead[], options: { trimmed?: boolean; acks?: TopicAck[] } = {}) =>
    checkTopicGuarantee({ acks: options.acks ?? acks, attempted, readers: [{ reader: 'r', topic: 't', reads }], trimmed: options.trimmed ?? false }).violations;

  it('passes a reader that got everything, with lost and doubled answers in between', () => {
    expect(check([read(0, ['a-1', 'a-2'], 2), read(2, ['b-1'], 3, { kept: false }), read(2, ['b-1', 'a-3'], 4)])).toEqual([]);
    expect(check([read(null, [], 2), read(2, ['b-1', 'a-3'], 4)])).toEqual([]);
  });

  it('excuses what a told reset skipped, and only that', () => {
    expect(check([read(0, ['a-1'], 1), read(1, ['a-3'], 4, { earliest: 4 })], { trimmed: true })).toEqual([]);
    expect(check([read(0, ['a-1'], 1), read(1, ['a-3'], 4, { earliest: 4 })])).toEqual([expect.stringContaining('but nothing was trimmed')]);
    expect(check([read(0, ['a-1', 'a-2'], 2), read(2, ['a-1'], 1, { earliest: 1 })], { trimmed: true })).toEqual([
      expect.stringContaining('back to earliest 1'),
      expect.stringMatching(/never received 2 .*b-1 \(seq 3\), a-3 \(seq 4\) \(stopped at position 1\)/),
    ]);
  });

  it('reports a silent skip, a message that never came, and a repeat at the position', () => {
    expect(check([read(0, ['a-1'], 1), read(1, ['a-3'], 4)])).toEqual([expect.stringMatching(/never received 2 .*a-2 \(seq 2\), b-1 \(seq 3\)/)]);
    expect(check([read(0, ['a-1', 'a-2', 'b-1'], 3)])).toEqual([expect.stringMatching(/never received 1 .*a-3/)]);
    expect(check([read(0, ['a-1', 'a-2'], 2), read(2, ['a-2', 'b-1', 'a-3'], 4)])).toEqual([expect.stringContaining('seq 2 (id 12) after position 2')]);
  });

  it('reports answers out of order, positions that do not match, and messages nobody published as such', () => {
    expect(check([read(0, ['a-2', 'a-1', 'b-1', 'a-3'], 4)])).toEqual([expect.stringContaining('seq 1 (id 11) after seq 2'), expect.stringContaining('first arrived after seq 2')]);
    expect(check([read(0, ['a-1', 'a-2', 'b-1', 'a-3'], 3)])).toEqual([expect.stringContaining('position 3, expected 4')]);
    const forged = { kept: true, sent: 4, messages: [{ id: 99, seq: 5, clientId: 'c-1', from: 'c' }], position: 5 };
    expect(check([read(0, ['a-1', 'a-2', 'b-1', 'a-3'], 4), forged])).toEqual([expect.stringContaining('no message anyone published')]);
    // A retry answered with another id than the first answer: two messages for one publish.
    expect(check([read(0, ['a-1', 'a-2', 'b-1', 'a-3'], 4)], { acks: [...acks, { ...acks[3]!, id: 15 }] })).toContainEqual(expect.stringContaining('answered as id 14 seq 4 and as id 15 seq 4'));
    expect(check([read(0, ['a-1', 'a-2', 'b-1', 'a-3'], 4)], { acks: acks.map((a) => (a.clientId === 'a-3' ? { ...a, n: 0 } : a)) })).toEqual([expect.stringContaining('a on t: n=1 got seq 1, after n=0 got seq 4')]);
  });

  it('reports a publish stored again after its message was trimmed', () => {
    // a-1 (seq 1) was trimmed, then its retry was stored again as id 15, seq 5.
    const again = { ...acks[0]!, id: 15, seq: 5 };
    const reads = [read(0, ['a-1', 'a-2', 'b-1', 'a-3'], 4), { kept: true, sent: 4, messages: [{ id: 15, seq: 5, clientId: 'a-1', from: 'a' }], position: 5 }];
    const verdict = checkTopicGuarantee({ acks: [...acks, again], attempted, readers: [{ reader: 'r', topic: 't', reads }], trimmed: true });
    expect(verdict.violations).toContainEqual(expect.stringContaining('publish a-1 was answered as id 11 seq 1 and as id 15 seq 5'));
  });
});
