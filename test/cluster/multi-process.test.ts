import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { spawnGateway, type GatewayProcess } from '../support/process.js';

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
