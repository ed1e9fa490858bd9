import type { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { runCli } from '../support/process.js';
import { freshRequest, pinOneConnectionPerWorker, spawnWorkers, waitFor, type WorkersProcess } from './support.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const issuer = createTokenIssuer({ secret: TEST_SECRET });

describe('start --workers: refused where workers could not share state', () => {
  it('refuses more than one worker on the embedded defaults, naming what is missing', async () => {
    const result = await runCli(['start', '--workers', '2'], { SQLITE_FILE: ':memory:', GATEWAY_JWT_SECRET: TEST_SECRET });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('MYSQL_URL and REDIS_URL (or REDIS_CLUSTER_NODES)');
    expect(result.stderr).toContain('--workers 1');
  });

  it('refuses SQLite + Redis too: the store must be MySQL', async () => {
    const result = await runCli(['start', '--workers', '2'], {
      SQLITE_FILE: ':memory:',
      REDIS_URL: 'redis://127.0.0.1:1',
      GATEWAY_JWT_SECRET: TEST_SECRET,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/2 workers need MYSQL_URL:/);
  });

  it('rejects a malformed --workers value', async () => {
    const result = await runCli(['start', '--workers', 'many'], { SQLITE_FILE: ':memory:', GATEWAY_JWT_SECRET: TEST_SECRET });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--workers must be an integer from 1 to 1024 or "auto"');
  });
});

const realCases = mysqlRedisCases('start --workers');

describe.skipIf(realCases.length === 0)('start --workers 2 on MariaDB + Redis', () => {
  const backend = useBackend(() => realCases[0]!.make());
  let gateway: WorkersProcess;

  beforeAll(async () => {
    gateway = await spawnWorkers(2, await backend.gatewayEnv());
  });
  afterAll(async () => {
    await gateway?.stop('SIGKILL');
  });

  it('delivers a message published through one worker to a poll held on the other, both ways', async () => {
    const pinned = await pinOneConnectionPerWorker(gateway.url, 2);
    const [[workerA, agentA], [workerB, agentB]] = [...pinned] as [[string, Agent], [string, Agent]];
    const sender = await issuer.issue('w-sender');
    try {
      for (const [pollWorker, pollAgent, publishWorker, publishAgent, user] of [
        [workerA, agentA, workerB, agentB, 'w-bob'],
        [workerB, agentB, workerA, agentA, 'w-carol'],
      ] as const) {
        const started = Date.now();
        const held = freshRequest(`${gateway.url}/v1/poll?wait=15`, { token: await issuer.issue(user), agent: pollAgent });
        await sleep(300);
        const published = await freshRequest(`${gateway.url}/v1/messages`, { method: 'POST', token: sender, agent: publishAgent, json: { to: user, body: { to: user } } });
        expect([published.status, published.worker]).toEqual([201, publishWorker]);
        const answer = await held;
        expect([answer.status, answer.worker]).toEqual([200, pollWorker]);
        expect((JSON.parse(answer.body) as { messages: Array<{ body: unknown }> }).messages).toEqual([expect.objectContaining({ body: { to: user } })]);
        // Well inside the 15 s wait: the wake-up crossed workers through Redis.
        expect(Date.now() - started).toBeLessThan(10_000);
      }
    } finally {
      for (const agent of pinned.values()) agent.destroy();
    }
  });

  it('wakes a topic poll held on one worker with a topic publish through the other, both ways, delivering each message once', async () => {
    const pinned = await pinOneConnectionPerWorker(gateway.url, 2);
    const [[workerA, agentA], [workerB, agentB]] = [...pinned] as [[string, Agent], [string, Agent]];
    const topic = `w-room:${Date.now().toString(36)}`;
    const writer = await issuer.issue('w-writer', { topics: { [topic]: ['publish'] } });
    const reader = await issuer.issue('w-reader', { topics: { [topic]: ['read'] } });
    type TopicAnswer = { messages: Array<{ topic?: string; seq?: number; body: unknown }>; positions?: Record<string, number> };
    try {
      let position = 0;
      for (const [pollWorker, pollAgent, publishWorker, publishAgent, n] of [
        [workerA, agentA, workerB, agentB, 1],
        [workerB, agentB, workerA, agentA, 2],
      ] as const) {
        const started = Date.now();
        const held = freshRequest(`${gateway.url}/v1/poll?wait=15&topic=${topic}@${position}`, { token: reader, agent: pollAgent });
        await sleep(300);
        const published = await freshRequest(`${gateway.url}/v1/messages`, { method: 'POST', token: writer, agent: publishAgent, json: { topic, id: `w-topic-${n}`, body: { n } } });
        expect([published.status, published.worker]).toEqual([201, publishWorker]);
        expect(JSON.parse(published.body)).toMatchObject({ seq: n, duplicate: false });
        const answer = await held;
        expect([answer.status, answer.worker]).toEqual([200, pollWorker]);
        const body = JSON.parse(answer.body) as TopicAnswer;
        expect(body.messages).toEqual([expect.objectContaining({ topic, seq: n, body: { n } })]);
        expect(body.positions).toEqual({ [topic]: n });
        // Well inside the 15 s wait: the topic's wake crossed workers through Redis.
        expect(Date.now() - started).toBeLessThan(10_000);
        // A retried publish through the polling worker is the same message: nothing new to read.
        const retried = await freshRequest(`${gateway.url}/v1/messages`, { method: 'POST', token: writer, agent: pollAgent, json: { topic, id: `w-topic-${n}`, body: { n } } });
        expect([retried.status, JSON.parse(retried.body).duplicate, JSON.parse(retried.body).seq]).toEqual([200, true, n]);
        position = body.positions![topic]!;
      }
      // Once each, in order, on either worker; nothing after the last position.
      for (const agent of [agentA, agentB]) {
        const all = JSON.parse((await freshRequest(`${gateway.url}/v1/poll?wait=0&topic=${topic}@0`, { token: reader, agent })).body) as TopicAnswer;
        expect(all.messages.map((message) => [message.seq, message.body])).toEqual([
          [1, { n: 1 }],
          [2, { n: 2 }],
        ]);
        const after = JSON.parse((await freshRequest(`${gateway.url}/v1/poll?wait=1&topic=${topic}@${position}`, { token: reader, agent })).body) as TopicAnswer;
        expect(after).toEqual({ messages: [], cursor: 0, positions: { [topic]: 2 } });
      }
    } finally {
      for (const agent of pinned.values()) agent.destroy();
    }
  }, 60_000);

  it('replaces a worker that crashed and keeps serving on the same port', async () => {
    const before = gateway.workerPids();
    expect(before).toHaveLength(2);
    process.kill(before[0]!, 'SIGKILL');
    await waitFor(() => {
      const now = gateway.workerPids();
      return now.length === 2 && !now.includes(before[0]!);
    }, 20_000, 'a replacement worker');
    const seen = new Set<string | undefined>();
    await waitFor(async () => {
      const response = await freshRequest(`${gateway.url}/healthz`);
      expect(response.status).toBe(200);
      seen.add(response.worker);
      return seen.has('3');
    }, 30_000, 'the replacement (worker 3) to answer');
    expect(gateway.output()).toContain('worker exited unexpectedly');
  }, 90_000);

  it('drains every worker on SIGTERM: held polls answered at once, exit code 0', async () => {
    const pids = gateway.workerPids();
    expect(pids).toHaveLength(2);
    const pinned = await pinOneConnectionPerWorker(gateway.url, 2);
    const tokens = await Promise.all([...pinned.keys()].map((worker) => issuer.issue(`w-drain-${worker}`)));
    const held = [...pinned.values()].map((agent, i) => freshRequest(`${gateway.url}/v1/poll?wait=20`, { token: tokens[i]!, agent }));
    await sleep(500);
    const started = Date.now();
    const exit = gateway.stop('SIGTERM');
    const answers = await Promise.all(held);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toEqual({ messages: [], cursor: 0 });
    }
    expect(answers.map((a) => a.worker).sort()).toEqual([...pinned.keys()].sort());
    expect(await exit).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    for (const agent of pinned.values()) agent.destroy();
  });
});
