import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { spawnGateway, type GatewayProcess } from '../support/process.js';
import { waitFor } from './support.js';

const realCases = mysqlRedisCases('two gateway processes');

describe.skipIf(realCases.length === 0)('two gateway processes sharing MariaDB + Redis', () => {
  const backend = useBackend(() => realCases[0]!.make());
  let first: GatewayProcess;
  let second: GatewayProcess;
  const issuer = createTokenIssuer({ secret: TEST_SECRET });

  beforeAll(async () => {
    const env = await backend.gatewayEnv();
    first = await spawnGateway(env);
    second = await spawnGateway(env);
  });
  afterAll(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
  });

  it('answers a poll held on one process when the message is published through the other', async () => {
    const bobToken = await issuer.issue('mp-bob');
    const aliceToken = await issuer.issue('mp-alice');
    const started = Date.now();
    const held = fetch(`${second.url}/v1/poll?wait=10`, { headers: { Authorization: `Bearer ${bobToken}` } });
    // Let the poll reach its wait on the second process before publishing on the first.
    await new Promise((r) => setTimeout(r, 300));
    const published = await fetch(`${first.url}/v1/messages`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${aliceToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: 'mp-bob', id: 'cross-1', body: { hello: 'from first' } }),
    });
    expect(published.status).toBe(201);
    const response = (await (await held).json()) as { messages: Array<{ from: string; body: unknown }> };
    expect(response.messages).toEqual([expect.objectContaining({ from: 'mp-alice', body: { hello: 'from first' } })]);
    // Well before the 10 s timeout: it was the wake-up, not the timeout, that answered.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('wakes topic polls held on both processes with a topic publish through one, delivering it once', async () => {
    const topic = `mp-room:${Date.now().toString(36)}`;
    const writer = await issuer.issue('mp-writer', { topics: { [topic]: ['publish'] } });
    const readers = await Promise.all(['mp-r1', 'mp-r2', 'mp-r3'].map((user) => issuer.issue(user, { topics: { [topic]: ['read'] } })));
    type TopicAnswer = { messages: Array<{ from: string; topic?: string; seq?: number; body: unknown }>; cursor: number; positions?: Record<string, number> };
    const poll = (gateway: GatewayProcess, token: string, query: string) => fetch(`${gateway.url}/v1/poll?${query}`, { headers: { Authorization: `Bearer ${token}` } });
    const heldPolls = async (gateway: GatewayProcess) => Number(/^lpg_held_polls (\d+)$/m.exec(await (await fetch(`${gateway.url}/metrics`)).text())?.[1]);
    const publish = (gateway: GatewayProcess) =>
      fetch(`${gateway.url}/v1/messages`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${writer}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ topic, id: 'mp-topic-1', body: { hello: 'everyone' } }),
      });

    const started = Date.now();
    // Two readers on the other process, one on the publishing one (answered from its own commit).
    const held = [poll(second, readers[0]!, `wait=10&topic=${topic}@0`), poll(second, readers[1]!, `wait=10&topic=${topic}@0`), poll(first, readers[2]!, `wait=10&topic=${topic}@0`)];
    await waitFor(async () => (await heldPolls(second)) === 2 && (await heldPolls(first)) === 1, 5_000, 'every topic poll to be held');
    const published = await publish(first);
    expect(published.status).toBe(201);
    expect(await published.json()).toMatchObject({ seq: 1, duplicate: false });
    for (const response of await Promise.all(held)) {
      expect(response.status).toBe(200);
      const answer = (await response.json()) as TopicAnswer;
      expect(answer.messages).toEqual([expect.objectContaining({ from: 'mp-writer', topic, seq: 1, body: { hello: 'everyone' } })]);
      expect(answer.positions).toEqual({ [topic]: 1 });
    }
    // Well before the 10 s timeout: the topic's wake, not the timeout, answered them.
    expect(Date.now() - started).toBeLessThan(5_000);

    // A retry through the other process is the same message; a reader at its position gets nothing more.
    const retried = await publish(second);
    expect(retried.status).toBe(200);
    expect(await retried.json()).toMatchObject({ seq: 1, duplicate: true });
    for (const gateway of [first, second]) {
      const after = (await (await poll(gateway, readers[0]!, `wait=1&topic=${topic}@1`)).json()) as TopicAnswer;
      expect(after).toEqual({ messages: [], cursor: 0, positions: { [topic]: 1 } });
    }
  });

  it('exits 0 on SIGTERM, answering a held poll at once', async () => {
    const token = await issuer.issue('mp-carol');
    const held = fetch(`${first.url}/v1/poll?wait=20`, { headers: { Authorization: `Bearer ${token}` } });
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const exit = first.stop('SIGTERM');
    const response = await held;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ messages: [], cursor: 0 });
    expect(await exit).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
