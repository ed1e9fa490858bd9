import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuthRequest } from '../src/auth/claims.js';
import { createTokenIssuer } from '../src/auth/tokens.js';
import { loadConfig } from '../src/config.js';
import { GatewayError } from '../src/errors.js';
import { createGateway, type Gateway } from '../src/gateway.js';
import { backendCases, TEST_SECRET, useBackend } from './support/backends.js';

const quiet = { info() {}, warn() {}, error() {}, isLevelEnabled: () => false };
const servers: Server[] = [];
const gateways: Gateway[] = [];
afterEach(async () => {
  for (const gateway of gateways.splice(0)) await gateway.close();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

async function serve(gateway: Gateway): Promise<string> {
  gateways.push(gateway);
  const server = createServer(gateway.callback);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const publish = (url: string, headers: Record<string, string>, to: string, body: unknown) =>
  fetch(`${url}/v1/messages`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ to, body }) });

describe('createGateway', () => {
  it('runs on in-memory defaults: a publish reaches a poll through the request listener, and close() closes the defaults', async () => {
    const gateway = await createGateway({ logger: quiet }, { auth: { jwtSecret: TEST_SECRET } });
    const url = await serve(gateway);
    const issuer = createTokenIssuer({ secret: TEST_SECRET });
    const held = fetch(`${url}/v1/poll?wait=5`, { headers: bearer(await issuer.issue('bob')) });
    await expect.poll(() => gateway.engine.heldPolls).toBe(1);
    expect((await publish(url, bearer(await issuer.issue('alice')), 'bob', { text: 'hi' })).status).toBe(201);
    expect(await (await held).json()).toMatchObject({ messages: [{ from: 'alice', body: { text: 'hi' } }], cursor: expect.any(Number) });

    gateways.splice(0);
    await gateway.close();
    expect(gateway.bus.healthy).toBe(false);
    await expect(gateway.store.ping()).rejects.toThrow();
  });

  describe.each(backendCases('createGateway parts'))('on $name', ({ make }) => {
    const backend = useBackend(make);

    it('leaves the store and bus it was given open', async () => {
      const store = await backend.createStore();
      const bus = await backend.createBus();
      const gateway = await createGateway({ store, bus, logger: quiet }, { auth: { jwtSecret: TEST_SECRET }, retention: { ackedHours: 1 } });
      expect(gateway.store).toBe(store);
      expect(gateway.retention).toBeDefined();
      await gateway.close();
      await expect(store.ping()).resolves.toBeUndefined();
      expect(bus.healthy).toBe(true);
    });
  });

  it('answers held polls empty on drain()', async () => {
    const gateway = await createGateway({ logger: quiet }, { auth: { jwtSecret: TEST_SECRET } });
    const url = await serve(gateway);
    const held = fetch(`${url}/v1/poll?wait=20`, { headers: bearer(await createTokenIssuer({ secret: TEST_SECRET }).issue('carol')) });
    await expect.poll(() => gateway.engine.heldPolls).toBe(1);
    gateway.drain();
    const response = await held;
    expect(response.headers.get('connection')).toBe('close');
    expect(await response.json()).toEqual({ messages: [], cursor: 0 });
  });

  it('refuses options it cannot work with before opening anything', async () => {
    await expect(createGateway({}, {})).rejects.toThrow(/either `verifyToken` or `auth.jwtSecret`/);
    await expect(createGateway({}, { verifyToken: async () => null, auth: { jwtSecret: TEST_SECRET } })).rejects.toThrow(/not both/);
    await expect(createGateway({}, { auth: { jwtSecret: TEST_SECRET }, poll: { waitDefaultSeconds: 30, waitMaxSeconds: 10 } })).rejects.toThrow(/waitDefaultSeconds/);
    await expect(createGateway({}, { auth: { jwtSecret: TEST_SECRET }, messages: { maxBatch: 0 } })).rejects.toThrow(/messages\.maxBatch must be between 1 and 10000, got 0/);
    await expect(createGateway({}, { auth: { jwtSecret: 'short' } })).rejects.toThrow(/auth\.jwtSecret must be at least 32 characters/);
  });

  it('checks options with the environment’s own rules, naming the option', async () => {
    const auth = { jwtSecret: TEST_SECRET };
    // POLL_LIMIT_MAX refuses 20000; so does its option (the old option check accepted it).
    expect(() => loadConfig({ POLL_LIMIT_MAX: '20000' })).toThrow(/POLL_LIMIT_MAX must be between 1 and 10000, got 20000/);
    await expect(createGateway({}, { auth, poll: { limitMax: 20_000 } })).rejects.toThrow(/poll\.limitMax must be between 1 and 10000, got 20000/);
    await expect(createGateway({}, { auth, poll: { waitMaxSeconds: 1.5 } })).rejects.toThrow(/poll\.waitMaxSeconds must be an integer, got 1\.5/);
    await expect(createGateway({}, { auth, poll: { maxHeld: '10' as unknown as number } })).rejects.toThrow(/poll\.maxHeld must be an integer, got "10"/);
    await expect(createGateway({}, { auth, http: { corsOrigins: ['https://app.example.com/'] } })).rejects.toThrow(/"https:\/\/app\.example\.com\/" is not an origin/);
    await expect(createGateway({}, { auth, messages: { ttlDefaultSeconds: 10, ttlMaxSeconds: 5 } })).rejects.toThrow(
      /messages\.ttlDefaultSeconds \(10\) must not exceed messages\.ttlMaxSeconds \(5\)/,
    );
    await expect(createGateway({}, { auth, rateLimit: { perUser: { ratePerSecond: -1, burst: 1 } } })).rejects.toThrow(/rateLimit\.perUser\.ratePerSecond must be between 0/);
    // A misspelt option would otherwise fall back to its default unnoticed.
    await expect(createGateway({}, { auth, poll: { waitMax: 5 } as never, rateLimit: { perUser: { rate: 1 } } as never })).rejects.toThrow(
      /poll\.waitMax is not a setting[\s\S]*rateLimit\.perUser\.rate is not a setting/,
    );
    // Every problem at once, as the environment reports them.
    await expect(createGateway({}, { auth, poll: { limitMax: 0 }, retention: { batchSize: 0 } })).rejects.toThrow(/poll\.limitMax[\s\S]*retention\.batchSize/);
  });

  it("answers a host middleware's http-errors with the table: a 4xx stays a client error, a 5xx is a logged 500", async () => {
    const errors: unknown[] = [];
    const logger = { ...quiet, error: (object: unknown) => void errors.push(object) };
    const url = await serve(
      await createGateway(
        { logger },
        {
          auth: { jwtSecret: TEST_SECRET },
          extraMiddleware: [
            (ctx, next) => {
              if (ctx.path === '/host/unprocessable') ctx.throw(422, 'That form is incomplete.');
              if (ctx.path === '/host/unauthorized') ctx.throw(401, 'Log in first.');
              if (ctx.path === '/host/broken') ctx.throw(502, 'upstream');
              return next();
            },
          ],
        },
      ),
    );
    const answer = async (path: string) => {
      const response = await fetch(`${url}${path}`);
      return [response.status, await response.json()];
    };
    expect(await answer('/host/unprocessable')).toEqual([400, { error: { code: 'invalid_request', message: 'That form is incomplete.' } }]);
    expect(await answer('/host/unauthorized')).toEqual([401, { error: { code: 'invalid_token', message: 'Log in first.' } }]);
    expect(await answer('/host/broken')).toEqual([500, { error: { code: 'internal_error', message: 'Internal server error.' } }]);
    expect(errors).toHaveLength(1);
  });

  it('lets a default left out follow a lowered maximum, as the environment variables do', async () => {
    const url = await serve(await createGateway({ logger: quiet }, { auth: { jwtSecret: TEST_SECRET }, poll: { waitMaxSeconds: 1, limitMax: 2 } }));
    const token = await createTokenIssuer({ secret: TEST_SECRET }).issue('dora');
    const started = Date.now();
    const response = await fetch(`${url}/v1/poll`, { headers: bearer(token) });
    expect(response.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(response.headers.get('x-poll-wait-max')).toBe('1');
  });

  it('stops listening to a bus it shares with its host once closed', async () => {
    const { createMemoryBus } = await import('../src/bus/memory-bus.js');
    const shared = createMemoryBus();
    let listening = 0;
    const counted = Object.assign(Object.create(shared) as typeof shared, {
      onWake: (observer: Parameters<typeof shared.onWake>[0]) => {
        listening += 1;
        const unsubscribe = shared.onWake(observer);
        return () => {
          listening -= 1;
          unsubscribe();
        };
      },
      onResync: (listener: () => void) => {
        listening += 1;
        const unsubscribe = shared.onResync(listener);
        return () => {
          listening -= 1;
          unsubscribe();
        };
      },
    });
    const gateway = await createGateway({ bus: counted, logger: quiet }, { auth: { jwtSecret: TEST_SECRET } });
    expect(listening).toBe(2);
    gateway.drain();
    await gateway.close();
    expect(listening).toBe(0);
    await shared.close();
  });
});

describe('createGateway with a verifyToken hook (the host application authenticates)', () => {
  const sessions = new Map<string, { subject: string; pub?: string[]; scope?: Array<'poll' | 'publish'>; topics?: Record<string, Array<'read' | 'publish'>> }>([
    ['s-alice', { subject: 'alice' }],
    ['s-host', { subject: 'host', topics: { 'desk:*': ['read', 'publish'] } }],
    ['s-bad-topics', { subject: 'bad', topics: { 'desk 1': ['read'] } }],
    ['s-bob', { subject: 'bob' }],
    ['s-reader', { subject: 'reader', scope: ['poll'] }],
    ['s-narrow', { subject: 'narrow', pub: ['bob'] }],
    ['s-broken', { subject: 'not a user id' }],
    ['s-scope-string', { subject: 'carol', scope: 'poll' as never }],
  ]);
  const seen: AuthRequest[] = [];
  async function start(extra: { simpleRequests?: boolean } = {}): Promise<string> {
    return serve(
      await createGateway(
        { logger: quiet },
        {
          ...extra,
          verifyToken: async (request) => {
            seen.push(request);
            if (request.headers['x-banned']) throw new GatewayError('forbidden', 'This account is suspended.');
            const sid = /(?:^|;\s*)sid=([^;]+)/.exec(request.headers.cookie ?? '')?.[1];
            return sid ? (sessions.get(sid) ?? null) : null;
          },
        },
      ),
    );
  }
  const cookie = (sid: string) => ({ Cookie: `theme=dark; sid=${sid}` });

  it("authenticates from the host's cookie: publish and poll round-trip", async () => {
    const url = await start();
    expect((await publish(url, cookie('s-alice'), 'bob', 'hello')).status).toBe(201);
    const poll = await fetch(`${url}/v1/poll?wait=0`, { headers: cookie('s-bob') });
    expect(await poll.json()).toMatchObject({ messages: [{ from: 'alice', body: 'hello' }] });
    expect(seen.at(-1)).toMatchObject({ method: 'GET', path: '/v1/poll', token: undefined, headers: { cookie: 'theme=dark; sid=s-bob' } });
  });

  it('takes the `topics` field of the caller it returns, held to the rules of the JWT claim', async () => {
    const url = await start();
    const posted = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { ...cookie('s-host'), 'Content-Type': 'application/json' }, body: JSON.stringify({ topic: 'desk:1', body: 'hi' }) });
    expect(posted.status).toBe(201);
    const read = await fetch(`${url}/v1/poll?wait=0&topic=desk:1@0`, { headers: cookie('s-host') });
    expect(await read.json()).toMatchObject({ messages: [{ topic: 'desk:1', seq: 1, body: 'hi' }], positions: { 'desk:1': 1 } });
    // No `topics` field: no topic.
    const refused = await fetch(`${url}/v1/poll?wait=0&topic=desk:1@0`, { headers: cookie('s-alice') });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('forbidden_topic');
    // A malformed one is the host's bug: a 500, not a 401 blaming the client.
    expect((await fetch(`${url}/v1/poll?wait=0`, { headers: cookie('s-bad-topics') })).status).toBe(500);
  });

  it('answers 401 unauthenticated without a session, and never consults the JWT path', async () => {
    const url = await start();
    for (const headers of [{}, cookie('s-nobody'), bearer('a.b.c')]) {
      const response = await fetch(`${url}/v1/poll?wait=0`, { headers });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: { code: 'unauthenticated', message: expect.any(String) } });
    }
    expect(seen.at(-1)?.token).toBe('a.b.c');
  });

  it("holds the host's claims to the token rules: scope, pub, and a usable subject", async () => {
    const url = await start();
    const refused = await publish(url, cookie('s-reader'), 'bob', 1);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('forbidden_scope');
    expect((await publish(url, cookie('s-narrow'), 'bob', 1)).status).toBe(201);
    const elsewhere = await publish(url, cookie('s-narrow'), 'alice', 1);
    expect(((await elsewhere.json()) as { error: { code: string } }).error.code).toBe('forbidden_recipient');
    const broken = await fetch(`${url}/v1/poll?wait=0`, { headers: cookie('s-broken') });
    expect(broken.status).toBe(500);
    const scopeString = await fetch(`${url}/v1/poll?wait=0`, { headers: cookie('s-scope-string') });
    expect(scopeString.status).toBe(500);
  });

  it('refuses what a page on another site could send with the cookie: text/plain bodies, JSONP, the method override', async () => {
    const url = await start();
    const textPlain = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { ...cookie('s-alice'), 'Content-Type': 'text/plain' }, body: JSON.stringify({ to: 'bob', body: 'forged' }) });
    expect(textPlain.status).toBe(415);
    const jsonp = await fetch(`${url}/v1/poll?wait=0&callback=steal`, { headers: cookie('s-bob') });
    expect(jsonp.headers.get('content-type')).not.toMatch(/javascript/);
    expect(await jsonp.text()).not.toMatch(/steal\(/);
    // A route with no POST of its own: a POST there is a 405 unless the override turned it into a GET.
    const overridden = await fetch(`${url}/v1/mailbox?_method=GET`, { method: 'POST', headers: { ...cookie('s-bob'), 'Content-Type': 'application/json' }, body: '{}' });
    expect(overridden.status).toBe(405);
    const poll = await fetch(`${url}/v1/poll?wait=0`, { headers: cookie('s-bob') });
    expect(await poll.json()).toMatchObject({ messages: [] });

    // A host whose hook reads only the request's token may turn them back on.
    const open = await start({ simpleRequests: true });
    const allowed = await fetch(`${open}/v1/messages`, { method: 'POST', headers: { ...cookie('s-alice'), 'Content-Type': 'text/plain' }, body: JSON.stringify({ to: 'bob', body: 'legacy' }) });
    expect(allowed.status).toBe(201);
  });

  it('passes on a GatewayError the hook throws', async () => {
    const url = await start();
    const response = await fetch(`${url}/v1/poll?wait=0`, { headers: { ...cookie('s-alice'), 'X-Banned': '1' } });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: { code: 'forbidden', message: 'This account is suspended.' } });
  });
});
