import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../../src/auth/tokens.js';
import { mysqlRedisCases, TEST_SECRET, useBackend } from '../support/backends.js';
import { freshRequest, spawnWorkers, type WorkersProcess } from './support.js';

const issuer = createTokenIssuer({ secret: TEST_SECRET });
const realCases = mysqlRedisCases('publish authorization, expiry, summary and receipts through --workers 2');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The publish-side features across node:cluster workers: every request goes out on a fresh
 * connection, so consecutive requests land on different workers (X-Gateway-Worker says which).
 */
describe.skipIf(realCases.length === 0)('who may publish, expiry, the mailbox summary and receipts through start --workers 2', () => {
  const backend = useBackend(() => realCases[0]!.make());
  let gateway: WorkersProcess;
  const workersSeen = new Set<string>();

  beforeAll(async () => {
    gateway = await spawnWorkers(2, { ...(await backend.gatewayEnv()), PUBLISH_DEFAULT: 'none' });
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  async function call(path: string, token: string, json?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await freshRequest(`${gateway.url}${path}`, { method: json === undefined ? 'GET' : 'POST', token, json });
    if (response.worker) workersSeen.add(response.worker);
    return { status: response.status, body: JSON.parse(response.body) as Record<string, unknown> };
  }

  it('refuses, expires, summarises and receipts the same on every worker', async () => {
    const agent = await issuer.issue('w-agent', { pub: ['w-customer*'] });
    const customer = await issuer.issue('w-customer-1', { pub: ['w-agent'] });
    const plain = await issuer.issue('w-plain');

    // PUBLISH_DEFAULT=none: a token without `pub` may not publish; `pub` decides the others.
    expect((await call('/v1/messages', plain, { to: 'w-agent', body: 'x' })).body).toMatchObject({ error: { code: 'forbidden_recipient' } });
    expect((await call('/v1/messages', customer, { to: 'w-customer-2', body: 'x' })).status).toBe(403);

    const kept = await call('/v1/messages', agent, { to: 'w-customer-1', body: 'keeps', receipt: true });
    expect(kept.status).toBe(201);
    expect((await call('/v1/messages', agent, { to: 'w-customer-1', body: 'expires', ttl: 1 })).status).toBe(201);
    expect((await call('/v1/messages', agent, { to: 'w-customer-1', body: 'x', ttl: 0 })).body).toMatchObject({ error: { code: 'invalid_ttl' } });
    await sleep(1_100);

    expect((await call('/v1/mailbox', customer)).body).toMatchObject({ pending: 1 });
    const polled = await call('/v1/poll?wait=0', customer);
    expect((polled.body.messages as Array<{ body: unknown }>).map((m) => m.body)).toEqual(['keeps']);
    await call(`/v1/poll?wait=0&cursor=${polled.body.cursor as number}`, customer); // acks

    let receipts: unknown[] = [];
    for (let attempt = 0; attempt < 50 && receipts.length === 0; attempt += 1) {
      receipts = ((await call('/v1/poll?wait=0', agent)).body.receipts as unknown[] | undefined) ?? [];
      if (receipts.length === 0) await sleep(100);
    }
    expect(receipts).toEqual([expect.objectContaining({ id: kept.body.id, to: 'w-customer-1', status: 'acked' })]);
    expect((await call(`/v1/messages/${kept.body.id as number}`, agent)).body).toMatchObject({ status: 'acked' });
    expect(workersSeen.size).toBe(2);
  });
});
