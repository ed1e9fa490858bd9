import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendCases } from '../../support/backends.js';
import { useTestGateway } from '../../support/gateway.js';
import { proxyAvailability, requestViaForwardProxy, SQUID_BINARY, startSquid, type RunningProxy } from './support/proxies.js';

/**
 * Debian's squid as a forward caching proxy (in-memory cache on). Legacy clients poll with
 * `access_token` in the query and no Authorization header, which is exactly the kind of GET a
 * shared cache may store: the gateway's no-store answers must make every poll reach it.
 */
const squid = proxyAvailability(SQUID_BINARY, 'squid-cache.test.ts');

describe.skipIf(!squid.run).each(backendCases('squid caching proxy'))('through a caching squid on $name', ({ make }) => {
  const gw = useTestGateway(make, { POLL_WAIT_MAX_S: '5' });
  let proxy: RunningProxy;
  let origin: Server;
  let originHits = 0;

  beforeAll(async () => {
    if (squid.missing) throw new Error(`CI=true but ${SQUID_BINARY} is missing: run \`bash scripts/proxies.sh\` first.`);
    proxy = await startSquid();
    // A cacheable control origin: proves this squid really caches what it is allowed to.
    origin = createServer((request, response) => {
      originHits += 1;
      if (request.url?.startsWith('/explicit')) response.setHeader('Cache-Control', 'public, max-age=300');
      response.setHeader('Content-Type', 'text/plain');
      response.end(`origin answer ${originHits}`);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await proxy?.stop();
    await new Promise((resolve) => (origin ? origin.close(resolve) : resolve(undefined)));
  });

  it.each(['/explicit?x=1', '/no-cache-headers?x=1'])('caches %s, whether or not it says how long (control)', async (path) => {
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}${path}`;
    const hitsBefore = originHits;
    const first = await requestViaForwardProxy(proxy, url);
    const second = await requestViaForwardProxy(proxy, url);
    expect(first.headers['x-cache']).toMatch(/^MISS/);
    expect(second.headers['x-cache']).toMatch(/^HIT/);
    expect(second.body).toBe(first.body);
    expect(originHits - hitsBefore).toBe(1);
  });

  it('never answers two identical polls from its cache', async () => {
    const alice = await gw.token('alice');
    const bob = await gw.token('bob');
    const pollUrl = `${gw.url}/v1/poll?wait=0&cursor=0&access_token=${bob}`;
    const publishThroughSquid = (n: number) =>
      requestViaForwardProxy(proxy, `${gw.url}/v1/messages?access_token=${alice}`, {
        method: 'POST',
        // text/plain: what a legacy cross-origin request can send without a preflight.
        headers: { 'Content-Type': 'text/plain' },
        body: JSON.stringify({ to: 'bob', id: `squid-${n}`, body: { n } }),
      });

    expect((await publishThroughSquid(1)).status).toBe(201);
    const first = await requestViaForwardProxy(proxy, pollUrl);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body).messages.map((message: { body: { n: number } }) => message.body.n)).toEqual([1]);

    expect((await publishThroughSquid(2)).status).toBe(201);
    // Byte-identical request: a cache would replay the first answer.
    const second = await requestViaForwardProxy(proxy, pollUrl);
    expect(second.status).toBe(200);
    expect(JSON.parse(second.body).messages.map((message: { body: { n: number } }) => message.body.n)).toEqual([1, 2]);

    const third = await requestViaForwardProxy(proxy, pollUrl);
    for (const response of [first, second, third]) {
      expect(response.headers['x-cache']).toMatch(/^MISS/);
      expect(response.headers.via).toMatch(/squid/);
    }
  });

  it('never answers two identical JSONP polls from its cache', async () => {
    const carol = await gw.token('carol');
    const pollUrl = `${gw.url}/v1/poll?callback=onPoll&wait=0&access_token=${carol}`;
    const first = await requestViaForwardProxy(proxy, pollUrl);
    const published = await gw.publish('carol-sender', { to: 'carol', body: 'fresh' });
    expect(published.status).toBe(201);
    const second = await requestViaForwardProxy(proxy, pollUrl);
    expect(first.body).not.toContain('fresh');
    expect(second.body).toContain('"fresh"');
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual([expect.stringMatching(/^MISS/), expect.stringMatching(/^MISS/)]);
  });
});
