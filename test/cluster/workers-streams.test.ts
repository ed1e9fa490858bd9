import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { openEventStream, openGatewaySocket, sendFrame, type StreamConnection } from '../support/stream-clients.js';
import { freshRequest, spawnWorkers, waitFor, type WorkersProcess } from './support.js';

const issuer = createTokenIssuer({ secret: TEST_SECRET });
const realCases = mysqlRedisCases('SSE streams and WebSockets through start --workers 2');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StreamMessage {
  id: number;
  body: { n: number };
  topic?: string;
  seq?: number;
}

interface StreamAnswer {
  messages: StreamMessage[];
  cursor: number;
  positions?: Record<string, number>;
}

/**
 * A client of one transport that reads its mailbox and one topic, acks every answer it gets
 * (SSE: POST /v1/ack on a fresh connection, so through either worker; WebSocket: an ack frame),
 * and reconnects whenever its connection ends, resuming from its last event id (SSE) or cursor and
 * position (WebSocket). It keeps what a client must check: messages by id, repeats, order.
 */
function startResumingReader(via: 'sse' | 'ws', url: string, token: string, topic: string) {
  const state = {
    /** Mailbox messages' `n` and topic messages' `seq`, in order of receipt. */
    mailbox: [] as number[],
    topic: [] as number[],
    ids: new Set<number>(),
    duplicates: 0,
    connections: 0,
    /** X-Gateway-Worker of each connection (the SSE answer's, the WebSocket's 101's). */
    workers: [] as string[],
    ackFailures: 0,
  };
  let lastEventId: string | undefined;
  let cursor = 0;
  let position = 0;
  let running = true;
  let current: StreamConnection | undefined;

  function onAnswer(answer: StreamAnswer, eventId: string | undefined, ack: (cursor: number) => void): void {
    for (const message of answer.messages) {
      if (state.ids.has(message.id)) {
        state.duplicates += 1;
        continue;
      }
      state.ids.add(message.id);
      if (message.topic === undefined) state.mailbox.push(message.body.n);
      else state.topic.push(message.seq!);
    }
    cursor = answer.cursor;
    position = answer.positions?.[topic] ?? position;
    if (eventId !== undefined) lastEventId = eventId;
    if (answer.messages.some((message) => message.topic === undefined)) ack(answer.cursor);
  }

  const ackByRequest = (acked: number) => {
    freshRequest(`${url}/v1/ack`, { method: 'POST', token, json: { cursor: acked }, timeoutMs: 5_000 }).then(
      (response) => {
        if (response.status !== 200) state.ackFailures += 1;
      },
      () => (state.ackFailures += 1), // lost with a killed worker: the next ack covers it
    );
  };

  const done = (async () => {
    while (running) {
      try {
        current =
          via === 'sse'
            ? await openEventStream(url, `/v1/stream?topic=${topic}@0`, { token, lastEventId }, (event) => onAnswer(JSON.parse(event.data) as StreamAnswer, event.id, ackByRequest))
            : await openGatewaySocket(url, token, `cursor=${cursor}&topic=${topic}@${position}`, (frame, socket) => {
                if (frame.type === 'batch') onAnswer(frame as unknown as StreamAnswer, undefined, (acked) => sendFrame(socket, { type: 'ack', cursor: acked }));
              });
      } catch {
        await sleep(100); // refused or reset while a worker was being replaced
        continue;
      }
      if (current.status === 200 || current.status === 101) {
        state.connections += 1;
        if (typeof current.headers['x-gateway-worker'] === 'string') state.workers.push(current.headers['x-gateway-worker']);
        await current.ended;
      }
      await sleep(50);
    }
  })();

  return {
    state,
    async stop() {
      running = false;
      current?.cut();
      await done;
    },
  };
}

/**
 * The streaming transports across node:cluster workers: a stream and a WebSocket are each held on
 * one worker while publishes go out on fresh connections to both (X-Gateway-Worker says which), so
 * half of what they get crossed workers through Redis. Then each original worker in turn is
 * SIGKILLed while publishing goes on: every connection is cut at least once, and its client
 * reconnects (to a surviving or replacement worker) from its event id, or its cursor and topic
 * position, and must get everything once, in order, with nothing left unacked.
 */
describe.skipIf(realCases.length === 0)('SSE streams and WebSockets on start --workers 2 (MariaDB + Redis)', () => {
  const backend = useBackend(() => realCases[0]!.make());
  let gateway: WorkersProcess;

  beforeAll(async () => {
    gateway = await spawnWorkers(2, { ...(await backend.gatewayEnv()), PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '0' });
  });
  afterAll(async () => {
    await gateway?.stop('SIGKILL');
  });

  it('delivers publishes through either worker to a stream and a WebSocket, and resumes both on another worker after theirs is killed, losing nothing', async () => {
    const topic = `ws-stream:${Date.now().toString(36)}`;
    const sender = await issuer.issue('st-sender', { topics: { [topic]: ['publish'] } });
    const users = { sse: 'st-sse-reader', ws: 'st-ws-reader' } as const;
    const tokens = {
      sse: await issuer.issue(users.sse, { topics: { [topic]: ['read'] } }),
      ws: await issuer.issue(users.ws, { topics: { [topic]: ['read'] } }),
    };
    const readers = { sse: startResumingReader('sse', gateway.url, tokens.sse, topic), ws: startResumingReader('ws', gateway.url, tokens.ws, topic) };
    const publishedBy = new Set<string>();
    let rounds = 0;
    /** Topic seqs the publishes were answered with. */
    const topicSeqs: number[] = [];

    /**
     * One publish on a fresh connection (so to either worker), the same request again after a
     * failure: a worker killed under it, or none listening while the replacement starts.
     */
    async function publish(json: Record<string, unknown>): Promise<{ seq?: number }> {
      for (let attempt = 0; attempt < 150; attempt += 1) {
        try {
          const response = await freshRequest(`${gateway.url}/v1/messages`, { method: 'POST', token: sender, json, timeoutMs: 5_000 });
          if (response.status === 201 || response.status === 200) {
            if (response.worker) publishedBy.add(response.worker);
            return JSON.parse(response.body) as { seq?: number };
          }
          if (response.status < 500 && response.status !== 429) throw new Error(`publish answered ${response.status}: ${response.body}`);
        } catch (error) {
          if ((error as Error).message.startsWith('publish answered')) throw error;
        }
        await sleep(100);
      }
      throw new Error(`publish ${JSON.stringify(json)} never succeeded`);
    }

    /** One message to each reader's mailbox and one to the topic. */
    async function publishRound(): Promise<void> {
      rounds += 1;
      const n = rounds;
      await publish({ to: users.sse, id: `st-sse-${n}`, body: { n } });
      await publish({ to: users.ws, id: `st-ws-${n}`, body: { n } });
      const { seq } = await publish({ topic, id: `st-topic-${n}`, body: { n } });
      topicSeqs.push(seq!);
    }

    const everythingArrived = () =>
      Object.values(readers).every(({ state }) => state.mailbox.length >= rounds && state.topic.length >= topicSeqs.length);

    /** Everything published so far, once, in order: each mailbox in publish order, the topic in seq order. */
    async function expectEverythingOnce(timeoutMs: number): Promise<void> {
      // Waited for without failing: the comparison below says what is missing.
      await waitFor(everythingArrived, timeoutMs, 'every message').catch(() => {});
      for (const via of ['sse', 'ws'] as const) {
        const { state } = readers[via];
        expect(state.mailbox, via).toEqual(Array.from({ length: rounds }, (_, i) => i + 1));
        expect(state.topic, via).toEqual(topicSeqs);
        // Resumed from its id or cursor and position: nothing already received came again.
        expect(state.duplicates, via).toBe(0);
      }
    }

    try {
      await waitFor(() => readers.sse.state.connections > 0 && readers.ws.state.connections > 0, 10_000, 'both readers to connect');
      for (let i = 0; i < 20; i += 1) await publishRound();
      // Fresh connections spread over both workers: each stream was fed through the other worker too.
      expect([...publishedBy].sort()).toEqual(['1', '2']);
      await expectEverythingOnce(10_000);
      const originalWorkers = gateway.workerPids();
      expect(originalWorkers).toHaveLength(2);
      // Each was held on one connection all along (the stream on one worker, as its header says).
      expect(readers.sse.state.workers).toHaveLength(1);
      expect(readers.ws.state.connections).toBe(1);
      // The WebSocket's 101 names its worker as any answer does.
      expect(readers.ws.state.workers).toHaveLength(1);
      expect(['1', '2']).toContain(readers.ws.state.workers[0]);

      // Publishing goes on while each original worker in turn is SIGKILLed and replaced: every
      // connection opened before is cut by one of the kills, its client reconnects and resumes.
      let publishing = true;
      const background = (async () => {
        while (publishing) {
          await publishRound();
          await sleep(30);
        }
      })();
      background.catch(() => {}); // awaited below; not an unhandled rejection meanwhile
      let nextWorker = 3;
      for (const pid of originalWorkers) {
        await sleep(500);
        process.kill(pid, 'SIGKILL');
        // Replaced, and the replacement serves (worker ids go on counting: 3, then 4).
        const replacement = String(nextWorker++);
        await waitFor(
          async () => {
            const now = gateway.workerPids();
            if (now.length !== 2 || now.includes(pid)) return false;
            const answer = await freshRequest(`${gateway.url}/healthz`, { timeoutMs: 2_000 }).catch(() => undefined);
            return answer?.worker === replacement;
          },
          30_000,
          `worker ${replacement} to replace pid ${pid}`,
        );
      }
      await sleep(500);
      publishing = false;
      await background;
      await expectEverythingOnce(20_000);
      // Each reader was cut by a kill and reconnected.
      expect(readers.sse.state.connections).toBeGreaterThan(1);
      expect(readers.ws.state.connections).toBeGreaterThan(1);
      // The stream ended on a replacement worker: both original ones (1 and 2) are gone.
      expect(['1', '2']).not.toContain(readers.sse.state.workers.at(-1));
      expect(['1', '2']).not.toContain(readers.ws.state.workers.at(-1));
      expect(gateway.output()).toContain('worker exited unexpectedly');
      // Every ack landed, through whichever worker: nothing is left pending.
      for (const via of ['sse', 'ws'] as const) {
        await waitFor(
          async () => (JSON.parse((await freshRequest(`${gateway.url}/v1/mailbox`, { token: tokens[via], timeoutMs: 5_000 })).body) as { pending: number }).pending === 0,
          10_000,
          `${via} reader's acks`,
        );
      }
    } finally {
      await Promise.all(Object.values(readers).map((reader) => reader.stop()));
    }
  }, 90_000);
});
