/**
 * Jepsen-style check of the delivery guarantee on real MariaDB + Redis:
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
 * Randomness is seeded (printed in the summary; JEPSEN_SEED=<n> replays the same choices, the
 * timing of course differs). Each actor has its own PRNG stream, so its choices do not depend on
 * how the actors interleave.
 */
import knexFactory from 'knex';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { seededRandom } from '../../src/bench/stats.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { childPids, spawnGateway, type GatewayProcess } from '../support/process.js';

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

    function pickEndpoint(rng: () => number, avoid?: string): string {
      const choices = endpoints.filter((u) => u !== avoid);
      const pool = choices.length > 0 ? choices : endpoints;
      return pool[Math.floor(rng() * pool.length)]!;
    }

    async function call(method: 'GET' | 'POST', url: string, token: string, timeoutMs: number, body?: unknown): Promise<{ status: number; text: string }> {
      const response = await request(url, {
        method,
        dispatcher: agent,
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Always read the whole body: a "lost" response is lost by the client, after the server sent it.
      const text = await response.body.text();
      return { status: response.statusCode, text };
    }

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
