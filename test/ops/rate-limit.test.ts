import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createPublishRateLimit, createTokenBuckets } from '../../src/ops/rate-limit.js';
import { backendCases, useBackend } from '../support/backends.js';
import { startTestGateway, useTestGateway, type TestGateway } from '../support/gateway.js';

describe('token buckets with an injected clock', () => {
  it('allows a burst, then refills at the configured rate', () => {
    let now = 0;
    const limit = createPublishRateLimit({ clock: { now: () => now } }, { perUser: { ratePerSecond: 2, burst: 3 }, perIp: { ratePerSecond: 0, burst: 1 } });
    expect([1, 2, 3].map(() => limit.admit('alice', 'ip', 1))).toEqual([undefined, undefined, undefined]);
    expect(limit.admit('alice', 'ip', 1)).toEqual({ scope: 'user', retryAfterSeconds: 1 });
    // Another user has a bucket of its own.
    expect(limit.admit('bob', 'ip', 1)).toBeUndefined();
    now += 499;
    expect(limit.admit('alice', 'ip', 1)).toMatchObject({ scope: 'user' });
    now += 1;
    expect(limit.admit('alice', 'ip', 1)).toBeUndefined();
    expect(limit.admit('alice', 'ip', 1)).toMatchObject({ scope: 'user' });
    // A long pause refills up to the burst, not beyond.
    now += 60_000;
    expect([1, 2, 3].map(() => limit.admit('alice', 'ip', 1))).toEqual([undefined, undefined, undefined]);
    expect(limit.admit('alice', 'ip', 1)).toMatchObject({ scope: 'user' });
  });

  it('charges a batch per message, capped at the burst, and says how long to wait', () => {
    let now = 0;
    const limit = createPublishRateLimit({ clock: { now: () => now } }, { perUser: { ratePerSecond: 1, burst: 10 }, perIp: { ratePerSecond: 0, burst: 1 } });
    expect(limit.admit('alice', 'ip', 8)).toBeUndefined();
    expect(limit.admit('alice', 'ip', 5)).toEqual({ scope: 'user', retryAfterSeconds: 3 });
    now += 3_000;
    expect(limit.admit('alice', 'ip', 5)).toBeUndefined();
    now += 100_000;
    // Larger than the burst: costs the whole bucket instead of being refused forever.
    expect(limit.admit('alice', 'ip', 500)).toBeUndefined();
    expect(limit.admit('alice', 'ip', 1)).toMatchObject({ scope: 'user' });
  });

  it('limits by address across users, and a refusal spends neither bucket', () => {
    let now = 0;
    const limit = createPublishRateLimit({ clock: { now: () => now } }, { perUser: { ratePerSecond: 1, burst: 2 }, perIp: { ratePerSecond: 1, burst: 3 } });
    expect(limit.admit('u1', '10.0.0.1', 1)).toBeUndefined();
    expect(limit.admit('u2', '10.0.0.1', 1)).toBeUndefined();
    expect(limit.admit('u3', '10.0.0.1', 1)).toBeUndefined();
    expect(limit.admit('u4', '10.0.0.1', 1)).toEqual({ scope: 'ip', retryAfterSeconds: 1 });
    // u4's own bucket was not charged by the refused request: from another address it has 2.
    expect(limit.admit('u4', '10.0.0.2', 1)).toBeUndefined();
    expect(limit.admit('u4', '10.0.0.2', 1)).toBeUndefined();
    expect(limit.admit('u4', '10.0.0.2', 1)).toMatchObject({ scope: 'user' });
  });

  it('is disabled by a rate of 0', () => {
    const limit = createPublishRateLimit({ clock: { now: () => 0 } }, { perUser: { ratePerSecond: 0, burst: 1 }, perIp: { ratePerSecond: 0, burst: 1 } });
    for (let i = 0; i < 100; i += 1) expect(limit.admit('alice', 'ip', 100)).toBeUndefined();
  });

  it('stays bounded under a flood of distinct keys', () => {
    let now = 0;
    const buckets = createTokenBuckets({ ratePerSecond: 1, burst: 5, maxKeys: 100 });
    for (let i = 0; i < 10_000; i += 1) {
      buckets.spend(`key-${i}`, 1, now);
      now += 1;
    }
    expect(buckets.size).toBeLessThanOrEqual(100);
    // The most recent key is still remembered (least recently used go first).
    expect(buckets.available('key-9999', now)).toBeLessThan(5);
  });

  it('takes its configuration from env variables and names a bad one', () => {
    expect(loadConfig({}).rateLimit).toEqual({ perUser: { ratePerSecond: 100, burst: 200 }, perIp: { ratePerSecond: 1000, burst: 2000 } });
    expect(() => loadConfig({ PUBLISH_RATE_PER_IP: '-5' })).toThrow(/PUBLISH_RATE_PER_IP must be between 0 and/);
    expect(() => loadConfig({ PUBLISH_BURST_PER_USER: '0' })).toThrow(/PUBLISH_BURST_PER_USER must be between 1 and/);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN must be at least 16 characters/);
    expect(() => loadConfig({ RETENTION_ACKED_HOURS: 'soon' })).toThrow(/RETENTION_ACKED_HOURS must be an integer/);
  });

  it('rejects nonsense options with a precise message', () => {
    expect(() => createTokenBuckets({ ratePerSecond: -1, burst: 1 })).toThrow('Expected `ratePerSecond` to be a non-negative number');
    expect(() => createTokenBuckets({ ratePerSecond: 1, burst: 0 })).toThrow('Expected `burst` to be a positive integer');
  });
});

describe.each(backendCases('publish rate limits'))('publish rate limits over HTTP on $name', ({ make }) => {
  // Per user: 2 at once, then 1 per second. Per address (all of this test is 127.0.0.1): 6.
  const gw = useTestGateway(make, { PUBLISH_RATE_PER_USER: '1', PUBLISH_BURST_PER_USER: '2', PUBLISH_RATE_PER_IP: '1', PUBLISH_BURST_PER_IP: '6' });
  const { nextUser, publish } = gw;
  const count = async (sender: string) => Number((await gw.knex('messages').where({ sender_id: sender }).count({ n: '*' }).first())?.n);

  it('answers 429 rate_limited with Retry-After beyond the per-user burst, storing nothing', async () => {
    const alice = nextUser();
    const send = (n: number) => publish(alice, { to: 'bob', id: `m${n}`, body: n });
    expect((await send(1)).status).toBe(201);
    expect((await send(2)).status).toBe(201);
    const refused = await send(3);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toEqual({ error: { code: 'rate_limited', message: expect.stringContaining('sender') } });
    expect(await count(alice)).toBe(2);
    // A batch is charged per message.
    const batch = await publish(nextUser(), { messages: [{ to: 'bob', body: 1 }, { to: 'bob', body: 2 }, { to: 'bob', body: 3 }] }, '/v1/messages/batch');
    expect(batch.status).toBe(201);
  });

  it('limits one address across users', async () => {
    // The earlier test spent 5 of this address's 6 tokens; fresh users still get refused by address.
    let refusal: Response | undefined;
    for (let i = 0; i < 4 && !refusal; i += 1) {
      const response = await publish(nextUser(), { to: 'bob', body: i });
      if (response.status === 429) refusal = response;
      else expect(response.status).toBe(201);
    }
    expect(refusal).toBeDefined();
    expect(refusal!.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await refusal!.json()).toEqual({ error: { code: 'rate_limited', message: expect.stringContaining('address') } });
    const metrics = await (await gw.request('/metrics')).text();
    expect(metrics).toMatch(/lpg_publish_rate_limited_total\{scope="ip"\} [1-9]/);
  });
});

describe.each(backendCases('per-IP limit behind a proxy'))('per-IP publish limit and TRUST_PROXY on $name', ({ make }) => {
  // A gateway per test, on purpose: the two differ in TRUST_PROXY, and each starts with full buckets.
  const backend = useBackend(make);
  const publishFrom = (gw: TestGateway, token: string, forwardedFor: string, n: number) =>
    gw.request('/v1/messages', {
      method: 'POST',
      token,
      json: { to: 'xff-bob', id: `xff-${forwardedFor}-${n}`, body: n },
      headers: { 'X-Forwarded-For': forwardedFor },
    });
  const limits = { PUBLISH_RATE_PER_USER: '0', PUBLISH_RATE_PER_IP: '1', PUBLISH_BURST_PER_IP: '2' };

  it('keys the bucket on the last X-Forwarded-For hop when TRUST_PROXY is on', async () => {
    const gw = await startTestGateway(backend, { ...limits, TRUST_PROXY: 'true' });
    try {
      const token = await gw.tokenFor('xff-alice');
      const statuses = [];
      for (let n = 0; n < 3; n += 1) statuses.push((await publishFrom(gw, token, '203.0.113.7', n)).status);
      // A client-supplied first hop does not escape the bucket: only the proxy's last hop counts.
      statuses.push((await publishFrom(gw, token, '198.51.100.1, 203.0.113.7', 3)).status);
      statuses.push((await publishFrom(gw, token, '203.0.113.8', 4)).status);
      expect(statuses).toEqual([201, 201, 429, 429, 201]);
    } finally {
      await gw.close();
    }
  });

  it('ignores X-Forwarded-For when TRUST_PROXY is off', async () => {
    const gw = await startTestGateway(backend, limits);
    try {
      const token = await gw.tokenFor('xff-alice');
      const statuses = [];
      for (let n = 0; n < 3; n += 1) statuses.push((await publishFrom(gw, token, `203.0.113.${n}`, n)).status);
      expect(statuses).toEqual([201, 201, 429]);
    } finally {
      await gw.close();
    }
  });
});
