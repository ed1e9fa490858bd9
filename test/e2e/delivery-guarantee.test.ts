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
 * Two more mailboxes are read over the streaming transports, one over SSE (GET /v1/stream), one over
 * a WebSocket (GET /v1/ws), whose answers ack nothing. Their readers hold one connection at a time
 * to a random endpoint and cut it (destroy the socket) after a random 100-800 ms, or right after an
 * event before acking it; they read some events and then lose them; each reconnect resumes from
 * the last event id (sometimes from the query's cursor instead) or the last cursor. They ack what
 * they received at once, late (maybe after the cut), or never (a later ack covers it), half of the
 * time through another process than the stream's. The same verdict holds them: every acknowledged
 * publish received, once after dedup, each sender in order.
 *
 * Publishers slow down while their mailbox has a backlog (BACKLOG_CAP), so the drain after the
 * publish phase stays short on a slow or busy machine. A receiver stops when it has every
 * acknowledged message of its mailbox, when the server answers its polls empty several rounds in a
 * row (nothing unacked left: a missing message was acked unseen; for a stream reader, several
 * connections in a row with no event for QUIET_STREAM_MS), or at the drain deadline.
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
 * workers is SIGKILLed. Four more readers stream: over SSE and over a WebSocket, from 0 or from
 * "now" (learnt with a short poll), one WebSocket subscribing to its second topic with a frame;
 * their connections are cut as the mailbox stream readers' are and resumed from their event ids or
 * positions, and every event is checked as a poll answer at the positions the reader held.
 * A second run trims the topics to TRIM_HISTORY_MAX messages every second and adds slow readers
 * that fall behind the history: they must be told of the reset, never skip silently. Every
 * answer, kept or thrown away, and every reader's whole history go through checkTopicGuarantee
 * (test/support/topic-guarantee.ts). JEPSEN_BREAK_TOPIC_READS runs these cases on a store whose
 * topic reads are wrong on purpose, and JEPSEN_BREAK_STREAMS on gateways whose streams skip a page
 * now and then, to see them fail.
 *
 * Randomness is seeded (printed in the summary; JEPSEN_SEED=<n> replays the same choices, the
 * timing of course differs). Each actor has its own PRNG stream, so its choices do not depend on
 * how the actors interleave.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import knexFactory from 'knex';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { seededRandom } from '../../src/bench/stats.js';
import { createRedisBus } from '../../src/bus/redis-bus.js';
import type { Bus } from '../../src/bus/types.js';
import type { Engine } from '../../src/core/engine.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { createKnex, createKnexStore, type KnexStore } from '../../src/store/knex/index.js';
import { backendCases, mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { childPids, spawnGateway, type GatewayProcess } from '../support/process.js';
import { holdThenCut, openEventStream, openGatewaySocket, sendFrame, type StreamConnection } from '../support/stream-clients.js';
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

// ---- Stream readers: the same guarantees over GET /v1/stream (SSE) and GET /v1/ws, connections cut at random.
type StreamTransport = 'sse' | 'ws';
const STREAM_TRANSPORTS: readonly StreamTransport[] = ['sse', 'ws'];
/** While publishing goes on, a stream reader cuts its connection after a uniform [CUT_MIN_MS, CUT_MAX_MS). */
const CUT_MIN_MS = 100;
const CUT_MAX_MS = 800;
/** Share of events after which the reader cuts at once: a mailbox reader before it acks what came. */
const CUT_AFTER_EVENT = 0.15;
/** Share of events the reader reads and then loses (cut at once, resumed from the id before it): they must come again. */
const LOSE_EVENT = 0.05;
/** A mailbox stream reader acks an event at once, or late (after up to LATE_ACK_MAX_MS, maybe after the cut), or never (a later ack covers it). */
const ACK_NOW = 0.35;
const ACK_LATE = 0.3;
const LATE_ACK_MAX_MS = 1_500;
/** Share of acks sent to another gateway process than the one the stream is on (a WebSocket's otherwise go as an ack frame). */
const ACK_ELSEWHERE = 0.5;
/** Share of SSE reconnects that resume from the query's cursor and positions instead of Last-Event-ID. */
const RESUME_BY_QUERY = 0.3;
/**
 * After publishing, a stream connection held this long without an event is quiet: the server holds
 * nothing unread after its cursor. EMPTY_ROUNDS_TO_STOP quiet connections in a row stop a reader
 * early, as empty polls stop a polling one.
 */
const QUIET_STREAM_MS = 1_500;

/** What a stream reader did, by transport: the faults it made happen and how the connections went. */
interface StreamStats {
  connections: number;
  /** Connections refused, reset or timed out before they were open (a process down), or answered 5xx / 429. */
  refused: number;
  events: number;
  /** Connections the reader cut, for any reason (after a random moment, after an event, losing an event). */
  cuts: number;
  cutsAfterEvent: number;
  lostEvents: number;
  /** Acks sent (mailbox readers), of which late and through another process than the stream's; failed POSTs. */
  acks: number;
  lateAcks: number;
  acksElsewhere: number;
  ackErrors: number;
  /** SSE reconnects from the query's cursor and positions rather than Last-Event-ID. */
  resumedByQuery: number;
}

const emptyStreamStats = (): StreamStats => ({ connections: 0, refused: 0, events: 0, cuts: 0, cutsAfterEvent: 0, lostEvents: 0, acks: 0, lateAcks: 0, acksElsewhere: 0, ackErrors: 0, resumedByQuery: 0 });

const formatStreamStats = (stats: Record<StreamTransport, StreamStats>) =>
  STREAM_TRANSPORTS.map((via) => `${via}={${Object.entries(stats[via]).map(([key, value]) => `${key}:${value}`).join(',')}}`).join(' ');

/** How long a stream reader holds its next connection before cutting it. */
function holdMsOf(rng: () => number, publishing: boolean): number {
  return publishing ? CUT_MIN_MS + Math.floor(rng() * (CUT_MAX_MS - CUT_MIN_MS)) : QUIET_STREAM_MS;
}

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
    const polledMailboxes = Array.from({ length: MAILBOXES }, (_, i) => `jr-${i}`);
    /** One mailbox more per streaming transport, read by a stream reader instead of a polling one. */
    const streamedMailboxes = new Map(STREAM_TRANSPORTS.map((via) => [`jr-${via}`, via]));
    const mailboxes = [...polledMailboxes, ...streamedMailboxes.keys()];
    const sendersOf = new Map(mailboxes.map((m, i) => [m, Array.from({ length: PUBLISHERS_PER_MAILBOX }, (_, j) => `js-${i}-${j}`)]));
    for (const user of [...mailboxes, ...[...sendersOf.values()].flat()]) tokens.set(user, await issuer.issue(user));

    const stats = { publishRequests: 0, publishRetries: 0, polls: 0, pollRequests: 0, pollErrors: 0, dropped: 0, doubled: 0, backpressureWaits: 0, kills: 0, workerReplaced: false };
    const streamStats: Record<StreamTransport, StreamStats> = { sse: emptyStreamStats(), ws: emptyStreamStats() };
    const fatal: string[] = [];
    /** Stream events or frames that contradict what the reader asked for (an id that is not the answer's cursor, a cursor that goes back). */
    const streamViolations: string[] = [];
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

    // ---- Stream receivers: a mailbox read over SSE or a WebSocket, the connection cut at random.
    const outstandingAcks: Array<Promise<void>> = [];

    async function postAck(url: string, token: string, cursor: number, counts: StreamStats): Promise<void> {
      try {
        const answer = await call('POST', `${url}/v1/ack`, token, PUBLISH_TIMEOUT_MS, { cursor });
        if (answer.status >= 500 || answer.status === 429) counts.ackErrors++;
        else if (answer.status !== 200) fatal.push(`ack ${url} cursor=${cursor} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
      } catch {
        counts.ackErrors++; // lost with the connection or the process: a later ack covers it
      }
    }

    /**
     * Reads the mailbox over one transport, one connection at a time, each to a random endpoint and
     * cut after a random moment; a reconnect resumes from the last event id (SSE; sometimes from the
     * query's cursor instead) or cursor (WebSocket). It acks what it received at once, late (maybe
     * after the cut), or never, sometimes through another process; it cuts right after some events,
     * before acking them, and loses some events after reading them (resuming from the id before).
     */
    async function streamReceiver(mailbox: string, via: StreamTransport): Promise<void> {
      const rng = rngFor(`${via}:${mailbox}`);
      const token = tokens.get(mailbox)!;
      const counts = streamStats[via];
      let lastEventId: string | undefined;
      let cursor = 0;
      let quietInARow = 0;
      for (;;) {
        if (fatal.length > 0 || Date.now() > drainDeadline) return;
        if (!publishing) {
          if (!backlogAtPublishEnd.has(mailbox)) backlogAtPublishEnd.set(mailbox, missingFor(mailbox).length);
          if (missingFor(mailbox).length === 0) return;
          // Nothing unread is left after the cursor on the server: whatever is still missing was acked unseen.
          if (quietInARow >= EMPTY_ROUNDS_TO_STOP) return;
        }
        const afterPublishing = !publishing;
        const url = pickEndpoint(rng);
        const limit = LIMIT_MIN + Math.floor(rng() * (LIMIT_MAX - LIMIT_MIN + 1));
        const byQuery = via === 'sse' && lastEventId !== undefined && rng() < RESUME_BY_QUERY;
        if (byQuery) counts.resumedByQuery++;
        const holdMs = holdMsOf(rng, publishing);
        /** The cursor this connection continues from: every event's must be past the one before. */
        let continuesFrom = cursor;
        let events = 0;

        function ack(answered: number, socket: WebSocket | undefined): void {
          const choice = rng();
          // Never, otherwise: the next ack, of a higher cursor, covers it.
          if (choice >= ACK_NOW + ACK_LATE) return;
          const delay = choice < ACK_NOW ? 0 : Math.floor(rng() * LATE_ACK_MAX_MS);
          const elsewhere = rng() < ACK_ELSEWHERE;
          const target = elsewhere ? pickEndpoint(rng, url) : url;
          counts.acks++;
          if (delay > 0) counts.lateAcks++;
          if (target !== url) counts.acksElsewhere++;
          // A WebSocket acks with a frame on itself; a frame sent after the cut is lost, as on a real network.
          const send = () => (socket && !elsewhere ? sendFrame(socket, { type: 'ack', cursor: answered }) : postAck(target, token, answered, counts));
          outstandingAcks.push(delay > 0 ? sleep(delay).then(send) : Promise.resolve(send()));
        }

        function onAnswer(answer: PollAnswer, eventId: string | undefined, cut: () => void, socket: WebSocket | undefined): void {
          counts.events++;
          events++;
          if (via === 'sse' && eventId !== String(answer.cursor)) streamViolations.push(`${mailbox} (${via}): event id ${eventId} for an answer with cursor ${answer.cursor}`);
          if (!(answer.cursor > continuesFrom)) streamViolations.push(`${mailbox} (${via}): an answer with cursor ${answer.cursor} continuing from cursor ${continuesFrom}`);
          if (rng() < LOSE_EVENT) {
            counts.lostEvents++;
            cut(); // read, then lost with the connection: resumed from the id before, it must come again
            return;
          }
          record(mailbox, answer);
          continuesFrom = cursor = answer.cursor;
          if (via === 'sse') lastEventId = eventId;
          if (rng() < CUT_AFTER_EVENT) {
            counts.cutsAfterEvent++;
            cut(); // before acking it: still unacked on the server
            return;
          }
          ack(answer.cursor, socket);
        }

        counts.connections++;
        let connection: StreamConnection;
        try {
          connection =
            via === 'sse'
              ? await openEventStream(url, `/v1/stream?cursor=${byQuery ? cursor : 0}&limit=${limit}`, { token, lastEventId: byQuery ? undefined : lastEventId }, (event, cut) =>
                  onAnswer(JSON.parse(event.data) as PollAnswer, event.id, cut, undefined),
                )
              : await openGatewaySocket(url, token, `cursor=${cursor}&limit=${limit}`, (frame, socket, cut) => {
                  if (frame.type === 'batch') onAnswer(frame as unknown as PollAnswer, undefined, cut, socket);
                });
        } catch {
          counts.refused++; // refused, reset or timed out (a process killed or restarting): try elsewhere
          await sleep(20 + Math.floor(rng() * 80));
          continue;
        }
        if (connection.status !== 200 && connection.status !== 101) {
          counts.refused++;
          if (connection.status < 500 && connection.status !== 429) fatal.push(`${via} ${url} for ${mailbox} answered ${connection.status}: ${connection.refusal.slice(0, 200)}`);
          await sleep(20 + Math.floor(rng() * 80));
          continue;
        }
        const end = await holdThenCut(connection, holdMs);
        if (end === 'cut') counts.cuts++;
        else await sleep(20 + Math.floor(rng() * 80)); // ended by the server (draining, superseded) or the network
        if (afterPublishing) quietInARow = events > 0 ? 0 : end === 'cut' ? quietInARow + 1 : quietInARow;
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
    const receivers = Promise.all(mailboxes.map((m) => (streamedMailboxes.has(m) ? streamReceiver(m, streamedMailboxes.get(m)!) : receiver(m))));
    await Promise.all([publishers, receivers, faults]);
    const tEnd = Date.now();
    await Promise.all(outstandingAcks);

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
    const readerOf = (mailbox: string) => streamedMailboxes.get(mailbox) ?? 'poll';
    const lostByReader = new Map<string, number>();
    for (const p of lost) lostByReader.set(readerOf(p.mailbox), (lostByReader.get(readerOf(p.mailbox)) ?? 0) + 1);
    const receivedByReader = mailboxes.map((m) => `${m}(${readerOf(m)}):${received.get(m)!.size}/${acknowledgedTo.get(m)!.length}`).join(' ');
    const summary =
      `[jepsen] seed=${SEED} published=${acknowledged.size} received=${receivedCount} duplicates=${duplicatesReceived} ` +
      `lost=${lost.length}${lost.length > 0 ? ` ${JSON.stringify(Object.fromEntries(lostByReader))}` : ''} orderViolations=${orderViolations.length} phantoms=${phantoms.length} streamViolations=${streamViolations.length} ` +
      `polls=${stats.polls} pollRequests=${stats.pollRequests} pollErrors=${stats.pollErrors} dropped=${stats.dropped} doubled=${stats.doubled} backpressureWaits=${stats.backpressureWaits} ` +
      `publishRequests=${stats.publishRequests} publishRetries=${stats.publishRetries} kills=${stats.kills} workerReplaced=${stats.workerReplaced} ` +
      `backlogAtPublishEnd=${[...backlogAtPublishEnd.values()].reduce((a, b) => a + b, 0)} ` +
      `publish=${((publishEndedAt - t0) / 1000).toFixed(1)}s drain=${((tEnd - publishEndedAt) / 1000).toFixed(1)}s` +
      (lost.length > 0 ? ` lostServerStatus=${JSON.stringify(Object.fromEntries(statusOfLost))}` : '') +
      `\n  streams: ${formatStreamStats(streamStats)}\n  received/acknowledged: ${receivedByReader}`;
    console.log(summary);

    const details = [
      summary,
      ...fatal.slice(0, 5).map((f) => `fatal: ${f}`),
      ...lost.slice(0, 10).map((p) => `lost: ${p.clientId} (server id ${p.serverId}) to ${p.mailbox}`),
      lost.length > 0 ? `lost by sender: ${JSON.stringify(Object.fromEntries(lostBySender))}` : '',
      ...orderViolations.slice(0, 5).map((v) => `order: ${v}`),
      ...phantoms.slice(0, 5).map((p) => `phantom: ${p}`),
      ...streamViolations.slice(0, 5).map((v) => `stream: ${v}`),
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
    expect(streamViolations, details).toEqual([]);
    // The stream readers' faults happened, on both transports: cuts at random and right after an
    // event, events lost after reading, acks late and through another process.
    for (const via of STREAM_TRANSPORTS) {
      const counts = streamStats[via];
      expect(Math.min(counts.events, counts.cuts, counts.cutsAfterEvent, counts.lostEvents, counts.lateAcks, counts.acksElsewhere), `${via}: ${details}`).toBeGreaterThan(0);
    }
    expect(streamStats.sse.resumedByQuery, details).toBeGreaterThan(0);
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

/**
 * JEPSEN_BREAK_STREAMS=skip-a-page runs the topic cases with gateways (those in this process) whose
 * streams and WebSockets skip one answer in STREAM_SKIP_EVERY: the route moves on to its positions
 * without sending it, as a stream that advanced before writing would. The stream readers must then
 * fail the check; polls are not touched.
 */
const BREAK_STREAMS = process.env.JEPSEN_BREAK_STREAMS;
if (BREAK_STREAMS !== undefined && BREAK_STREAMS !== 'skip-a-page') throw new Error(`JEPSEN_BREAK_STREAMS must be "skip-a-page", got "${BREAK_STREAMS}"`);
const STREAM_SKIP_EVERY = 20;

/** Makes the engine's stream answers (the ones that ack nothing) skip a page now and then; see BREAK_STREAMS. */
function skipStreamPages(engine: Engine): void {
  const holdPoll = engine.holdPoll;
  let answers = 0;
  engine.holdPoll = async (userId, request) => {
    const result = await holdPoll(userId, request);
    const news = result.messages.length > 0 || (result.topics ?? []).some((topic) => topic.messages.length > 0);
    if (request.acknowledge !== false || !news || ++answers % STREAM_SKIP_EVERY !== 0) return result;
    const topics = result.topics ? result.topics.map((topic) => ({ name: topic.topic, position: topic.position })) : request.topics;
    return holdPoll(userId, { ...request, cursor: result.cursor, ...(topics ? { topics } : {}) });
  };
}

interface TopicReaderSpec {
  name: string;
  /** Indices into the run's topics. */
  topics: readonly number[];
  /** `0` reads the whole history; `now` joins at the head (a short poll) at `startAt` of the publish phase. */
  start: '0' | 'now';
  startAt: number;
  /** Polls by GET or POST, or a stream over SSE or a WebSocket (which learns "from now" with a short poll first). */
  via: 'GET' | 'POST' | StreamTransport;
  /** Pauses between polls while publishing goes on (and so falls behind a trimmed history); never slows publishers down. */
  slow: boolean;
  /** A WebSocket reader asks for its first topic in the query and subscribes to the others with a frame once open. */
  subscribeByFrame?: boolean;
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
  /** The sockets of its WebSockets: taken over from the server, which no longer closes them. */
  upgraded: Set<Duplex>;
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
      if (BREAK_STREAMS) skipStreamPages(gateway.engine);
      const server = createServer(gateway.callback);
      server.keepAliveTimeout = 5_000;
      const upgraded = new Set<Duplex>();
      server.on('upgrade', (request, socket: Duplex, head: Buffer) => {
        upgraded.add(socket);
        socket.once('close', () => upgraded.delete(socket));
        gateway.upgrade(request, socket, head);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, gateway, upgraded, closeParts: made.close };
    }
    async function crash(node: TopicNode): Promise<void> {
      for (const socket of node.upgraded) socket.destroy();
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
      { name: `jtr-${tag}-sse-both`, topics: [0, 1], start: '0', startAt: 0, via: 'sse', slow: false },
      { name: `jtr-${tag}-ws-both`, topics: [0, 1], start: '0', startAt: 0, via: 'ws', slow: false, subscribeByFrame: true },
      { name: `jtr-${tag}-sse-now1`, topics: [1], start: 'now', startAt: 0.3, via: 'sse', slow: false },
      { name: `jtr-${tag}-ws-now0`, topics: [0], start: 'now', startAt: 0.4, via: 'ws', slow: false },
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
    const streamStats: Record<StreamTransport, StreamStats> = { sse: emptyStreamStats(), ws: emptyStreamStats() };
    /** Stream events whose id is not the answer's cursor and positions. */
    const streamViolations: string[] = [];
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

      /** `unasked`: topics the answer may leave out (subscribed by a frame the server may not have read yet). */
      function record(answer: TopicPollAnswer, sent: ReadonlyMap<string, number | null>, kept: boolean, unasked: ReadonlySet<string> = new Set()): void {
        for (const message of answer.messages) {
          if (message.topic === undefined || !names.includes(message.topic)) fatal.push(`${spec.name} got a message of ${message.topic ?? 'its mailbox'}: ${JSON.stringify(message).slice(0, 200)}`);
        }
        for (const name of names) {
          const position = answer.positions?.[name];
          if (position === undefined) {
            if (unasked.has(name) && !answer.messages.some((m) => m.topic === name)) continue;
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

      if (spec.via === 'sse' || spec.via === 'ws') return streamTopics(spec, spec.via, { rng, token, names, positions, record });
      const via = spec.via;
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
          answers = await Promise.all([pollTopics(first, token, via, sent, wait, limitOf()), pollTopics(second, token, via, sent, wait, limitOf())]);
          if (answers[1 - keptIndex]) stats.dropped++;
        } else {
          answers = [await pollTopics(pickEndpoint(rng), token, via, sent, wait, limitOf())];
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

    /**
     * A topic reader over SSE or a WebSocket: one connection at a time, each to a random gateway,
     * cut after a random moment or right after an event, resumed from its last event id (sometimes
     * from the query's positions instead) or from its positions. Some events are read and then
     * lost: thrown away, and resumed from the positions before them. Each event or frame is a page
     * after the positions the reader held, recorded and checked like a poll answer.
     */
    async function streamTopics(
      spec: TopicReaderSpec,
      via: StreamTransport,
      reader: {
        rng: () => number;
        token: string;
        names: readonly string[];
        positions: Map<string, number | null>;
        record(answer: TopicPollAnswer, sent: ReadonlyMap<string, number | null>, kept: boolean, unasked?: ReadonlySet<string>): void;
      },
    ): Promise<void> {
      const { rng, token, names, positions, record } = reader;
      const counts = streamStats[via];
      // A stream tells nothing until its first event: "from now" is learned with a short poll.
      while ([...positions.values()].includes(null)) {
        if (fatal.length > 0 || Date.now() > drainDeadline) return;
        const sent = new Map(positions);
        const answer = await pollTopics(pickEndpoint(rng), token, 'GET', sent, 0, 1);
        if (answer) record(answer, sent, true);
        else await sleep(20 + Math.floor(rng() * 80));
      }
      /** The positions of the URL first opened: what a browser's EventSource reconnects with, beside Last-Event-ID. */
      const firstOpened = new Map(positions);
      let lastEventId: string | undefined;
      const topicQuery = (from: ReadonlyMap<string, number | null>, except: ReadonlySet<string>) =>
        names
          .filter((name) => !except.has(name))
          .map((name) => `topic=${name}@${from.get(name)}`)
          .join('&');
      for (;;) {
        if (fatal.length > 0 || Date.now() > drainDeadline) return;
        if (!publishing && names.every((name) => (positions.get(name) ?? -1) >= headOf.get(name)!)) return;
        const url = pickEndpoint(rng);
        const limit = LIMIT_MIN + Math.floor(rng() * (LIMIT_MAX - LIMIT_MIN + 1));
        const byQuery = via === 'sse' && lastEventId !== undefined && rng() < RESUME_BY_QUERY;
        if (byQuery) counts.resumedByQuery++;
        const holdMs = holdMsOf(rng, publishing);
        const framed = new Set(via === 'ws' && spec.subscribeByFrame ? names.slice(1) : []);

        const onAnswer = (answer: TopicPollAnswer, eventId: string | undefined, cut: () => void) => {
          counts.events++;
          const sent = new Map(positions);
          if (via === 'sse') {
            const expected = [String(answer.cursor), ...names.map((name) => `${name}@${answer.positions?.[name]}`)].join(';');
            if (eventId !== expected) streamViolations.push(`${spec.name} (sse): event id ${eventId} for an answer whose id is ${expected}`);
          }
          if (rng() < LOSE_EVENT) {
            counts.lostEvents++;
            record(answer, sent, false, framed);
            cut(); // read, then lost with the connection: resumed from the positions before it
            return;
          }
          record(answer, sent, true, framed);
          if (via === 'sse') lastEventId = eventId;
          if (rng() < CUT_AFTER_EVENT) {
            counts.cutsAfterEvent++;
            cut();
          }
        };

        counts.connections++;
        let connection: StreamConnection;
        try {
          if (via === 'sse') {
            const resumeFrom = lastEventId === undefined || byQuery ? positions : firstOpened;
            connection = await openEventStream(url, `/v1/stream?cursor=0&limit=${limit}&${topicQuery(resumeFrom, new Set())}`, { token, lastEventId: byQuery ? undefined : lastEventId }, (event, cut) =>
              onAnswer(JSON.parse(event.data) as TopicPollAnswer, event.id, cut),
            );
          } else {
            const socketed = await openGatewaySocket(url, token, `limit=${limit}&${topicQuery(positions, framed)}`, (frame, _socket, cut) => {
              if (frame.type === 'batch') onAnswer(frame as unknown as TopicPollAnswer, undefined, cut);
            });
            for (const name of framed) sendFrame(socketed.socket, { type: 'subscribe', topic: name, position: positions.get(name) });
            connection = socketed;
          }
        } catch {
          counts.refused++; // refused, reset or timed out (a gateway crashed or restarting): try elsewhere
          await sleep(20 + Math.floor(rng() * 80));
          continue;
        }
        if (connection.status !== 200 && connection.status !== 101) {
          counts.refused++;
          if (connection.status < 500 && connection.status !== 429) fatal.push(`${via} ${url} for ${spec.name} answered ${connection.status}: ${connection.refusal.slice(0, 200)}`);
          await sleep(20 + Math.floor(rng() * 80));
          continue;
        }
        const end = await holdThenCut(connection, holdMs);
        if (end === 'cut') counts.cuts++;
        else await sleep(20 + Math.floor(rng() * 80)); // ended by the gateway (crashed, draining, superseded)
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
      (BREAK_TOPIC_READS ? ` BROKEN STORE: ${BREAK_TOPIC_READS}` : '') +
      (BREAK_STREAMS ? ` BROKEN STREAMS: ${BREAK_STREAMS}` : '') +
      ` streamViolations=${streamViolations.length}\n  streams: ${formatStreamStats(streamStats)}`;
    console.log(summary);
    const details = [
      summary,
      ...fatal.slice(0, 5).map((f) => `fatal: ${f}`),
      ...verdict.violations.slice(0, 10),
      ...streamViolations.slice(0, 5).map((v) => `stream: ${v}`),
      `replay with JEPSEN_SEED=${SEED}`,
    ].join('\n');
    return { verdict, stats, streamStats, streamViolations, fatal, details, trimmedTo: topicNames.map((name) => trimmedTo.get(name) ?? 0), acked: new Set(acks.map((a) => a.clientId)).size };
  }

  /** The stream readers' faults happened, on both transports: cuts at random and right after an event, events lost after reading. */
  function expectStreamFaults(streamStats: Record<StreamTransport, StreamStats>, details: string): void {
    for (const via of STREAM_TRANSPORTS) {
      const counts = streamStats[via];
      expect(Math.min(counts.events, counts.cuts, counts.cutsAfterEvent, counts.lostEvents), `${via}: ${details}`).toBeGreaterThan(0);
    }
    expect(streamStats.sse.resumedByQuery, details).toBeGreaterThan(0);
  }

  it('delivers every acknowledged topic publish to every reader once, in topic order', async () => {
    const { verdict, stats, streamStats, streamViolations, fatal, details, acked } = await runTopicScenario(false);
    expect(fatal, details).toEqual([]);
    expect(verdict.violations, details).toEqual([]);
    expect(streamViolations, details).toEqual([]);
    expectStreamFaults(streamStats, details);
    expect(stats.crashes, details).toBe(2);
    expect(stats.workerKilled, details).toBe(backend.real);
    expect(acked, details).toBeGreaterThan(MIN_TOPIC_ACKS);
    // The faults happened: answers lost on both sides and positions sent twice at once.
    expect(Math.min(stats.publishDropped, stats.dropped, stats.doubled), details).toBeGreaterThan(0);
  }, 30_000);

  it('tells readers behind a trimmed history of the reset and never lets them skip silently', async () => {
    const { verdict, stats, streamStats, streamViolations, fatal, details, acked, trimmedTo } = await runTopicScenario(true);
    expect(fatal, details).toEqual([]);
    expect(verdict.violations, details).toEqual([]);
    expect(streamViolations, details).toEqual([]);
    expectStreamFaults(streamStats, details);
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
