import { request } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'acorn';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkClaims, type TopicRight } from '../../src/auth/claims.js';
import { createPublishPolicy } from '../../src/auth/publish-policy.js';
import { mayUseTopic } from '../../src/auth/topic-policy.js';
import { createDemoMiddleware, type DemoClaims } from '../../src/http/demo.js';
import { repoRoot } from './support/legacy-bundle.js';

let baseUrl: string;
let closeServer: () => Promise<void>;
const issued: string[] = [];
const issuedClaims = new Map<string, DemoClaims>();

beforeAll(async () => {
  const bundleDir = mkdtempSync(join(tmpdir(), 'demo-bundle-'));
  writeFileSync(join(bundleDir, 'longpoll.legacy.js'), '/* bundle */ var LongPoll = {};');
  const app = new Koa();
  app.use(
    createDemoMiddleware({
      demoDir: join(repoRoot, 'demo'),
      legacyBundlePath: join(bundleDir, 'longpoll.legacy.js'),
      issueToken: async (userId, claims) => {
        issued.push(userId);
        issuedClaims.set(userId, claims);
        return `token-for-${userId}`;
      },
    }),
  );
  app.use((ctx) => {
    ctx.status = 418;
    ctx.body = 'reached the next middleware';
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  closeServer = () => new Promise((resolve) => server.close(() => resolve()));
});
afterAll(() => closeServer());

/** Raw request, so that paths like /demo/../x reach the server unnormalised. */
function get(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(baseUrl);
    const outgoing = request({ hostname, port, path, method }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: response.statusCode!, headers: response.headers, body: bytes.toString('utf8'), bytes });
      });
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('createDemoMiddleware', () => {
  it('serves index.html at /demo/ without caching', async () => {
    const response = await get('/demo/?role=agent');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.body).toContain('<script src="/client/longpoll.legacy.js"></script>');
  });

  it('redirects /demo to /demo/, keeping the query', async () => {
    const response = await get('/demo?role=agent');
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe('/demo/?role=agent');
  });

  it.each([
    ['/demo/demo.js', 'application/javascript; charset=utf-8'],
    ['/demo/demo.css', 'text/css; charset=utf-8'],
    ['/client/longpoll.legacy.js', 'application/javascript; charset=utf-8'],
  ])('serves %s as %s', async (path, contentType) => {
    const response = await get(path);
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe(contentType);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.body.length).toBeGreaterThan(10);
  });

  it.each(['/demo/../package.json', '/demo/..%2fpackage.json', '/demo/%2e%2e/package.json', '/demo/.gitignore', '/demo/sub/demo.js', '/demo/missing.js', '/demo/demo.exe', '/demo/index.html%00.js'])(
    'answers 404 for %s',
    async (path) => {
      const response = await get(path);
      expect(response.status).toBe(404);
      expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'not_found' } });
    },
  );

  it('serves a favicon (SVG, plus an .ico for browsers without SVG icons) that index.html links to', async () => {
    const svg = await get('/demo/favicon.svg');
    expect(svg.status).toBe(200);
    expect(svg.headers['content-type']).toBe('image/svg+xml');
    expect(svg.headers['cache-control']).toBe('no-store');
    expect(svg.body).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);

    const ico = await get('/demo/favicon.ico');
    expect(ico.status).toBe(200);
    expect(ico.headers['content-type']).toBe('image/x-icon');
    // ICONDIR: reserved 0, type 1 (icon), at least one image, whose data lies inside the file.
    expect([ico.bytes.readUInt16LE(0), ico.bytes.readUInt16LE(2)]).toEqual([0, 1]);
    expect(ico.bytes.readUInt16LE(4)).toBeGreaterThan(0);
    expect(ico.bytes.readUInt32LE(6 + 12) + ico.bytes.readUInt32LE(6 + 8)).toBeLessThanOrEqual(ico.bytes.length);

    const page = (await get('/demo/')).body;
    expect(page).toContain('<link rel="icon" href="favicon.svg" type="image/svg+xml">');
    expect(page).toContain('<link rel="icon" href="favicon.ico" sizes="any">');
  });

  it('mints tokens for demo users only', async () => {
    const response = await get('/demo/token?user=demo-customer');
    expect(response.status).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(response.body)).toEqual({ token: 'token-for-demo-customer', user: 'demo-customer' });
    expect(issued).toEqual(['demo-customer']);

    for (const query of ['user=alice', 'user=demo-', 'user=demo-a&user=demo-b', '', 'user=demo-x%20y']) {
      const rejected = await get(`/demo/token?${query}`);
      expect(rejected.status, query).toBe(400);
      expect(JSON.parse(rejected.body), query).toMatchObject({ error: { code: 'invalid_demo_user' } });
    }
    expect(issued).toEqual(['demo-customer']);
  });

  it.each([
    ['customer', /^demo-customer-[a-z2-9]{12}$/],
    ['agent', /^demo-agent-[a-z2-9]{12}$/],
  ])('mints a fresh, unguessable id for every `role=%s` request (one per tab)', async (role, idPattern) => {
    issued.length = 0;
    const users = new Set<string>();
    for (let index = 0; index < 20; index++) {
      const response = await get(`/demo/token?role=${role}`);
      expect(response.status).toBe(200);
      expect(response.headers['cache-control']).toBe('no-store');
      const { token, user } = JSON.parse(response.body) as { token: string; user: string };
      expect(user).toMatch(idPattern);
      expect(token).toBe(`token-for-${user}`);
      // Minted with the claims of its role (the claims test below says what each role may do).
      expect(issuedClaims.get(user)!.topics, user).toHaveProperty(role === 'customer' ? `conv:${user}` : 'conv:*');
      users.add(user);
    }
    expect(users.size).toBe(20);
    expect(issued).toEqual([...users]);
  });

  it('refuses unknown roles and a role together with a user', async () => {
    issued.length = 0;
    for (const query of ['role=admin', 'role=', 'role=customer&role=customer', 'role=customer&user=demo-agent', 'role=agent&user=demo-agent', 'role=Customer']) {
      const rejected = await get(`/demo/token?${query}`);
      expect(rejected.status, query).toBe(400);
      expect(JSON.parse(rejected.body), query).toMatchObject({ error: { code: expect.stringMatching(/^invalid_demo_(role|user)$/) } });
    }
    expect(issued).toEqual([]);
  });

  it('keeps demo.js ES5 without modern or networking globals (it runs on the legacy client in old browsers)', () => {
    const source = readFileSync(join(repoRoot, 'demo', 'demo.js'), 'utf8');
    expect(() => parse(source, { ecmaVersion: 5, sourceType: 'script' })).not.toThrow();
    const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    for (const name of ['Promise', 'fetch', 'Map', 'Set', 'WeakMap', 'Symbol', 'WebSocket', 'EventSource', 'AbortController', 'Object.assign', 'Array.from', 'classList', 'dataset', 'URLSearchParams', 'padStart', 'includes']) {
      expect(code, name).not.toMatch(new RegExp(`(^|[^\\w$])${name.replace('.', '\\.')}\\b`));
    }
  });

  it('gives customers their own conversation, the announcements and the desk to say hello; agents every conversation, the desk and announcing', async () => {
    const customer = 'demo-customer-k3m9p2x7q4rs';
    const agent = 'demo-agent-7hq2m4k9x3bn';
    const users = [customer, 'demo-customer', agent, 'demo-agent', 'demo-visitor', 'demo-customer@example'];
    for (const user of users) {
      expect((await get(`/demo/token?user=${encodeURIComponent(user)}`)).status).toBe(200);
    }
    expect(Object.fromEntries(users.map((user) => [user, issuedClaims.get(user)]))).toEqual({
      [customer]: { pub: [], topics: { [`conv:${customer}`]: ['read', 'publish'], announce: ['read'], desk: ['publish', 'presence'] } },
      'demo-customer': { pub: [], topics: { 'conv:demo-customer': ['read', 'publish'], announce: ['read'], desk: ['publish', 'presence'] } },
      [agent]: { pub: [], topics: { 'conv:*': ['read', 'publish', 'presence'], announce: ['read', 'publish'], desk: ['read'] } },
      'demo-agent': { pub: [], topics: { 'conv:*': ['read', 'publish', 'presence'], announce: ['read', 'publish'], desk: ['read'] } },
      'demo-visitor': { pub: [] },
      // `conv:demo-customer@example` is no topic name: that customer has no conversation.
      'demo-customer@example': { pub: [], topics: { announce: ['read'], desk: ['publish', 'presence'] } },
    });

    // What the gateway makes of them: every claim is one it accepts, and grants exactly this.
    const claimsOf = (user: string) => {
      const claims = checkClaims({ subject: user, scope: undefined, ...issuedClaims.get(user)! });
      if ('unusable' in claims) throw new Error(`${user}: unusable ${claims.unusable} claim`);
      return claims;
    };
    const may = (user: string, topic: string, right: TopicRight) => mayUseTopic(claimsOf(user), topic, right);
    const own = `conv:${customer}`;
    const other = 'conv:demo-customer-2a3b4c5d6e7f';
    const rights = (user: string) =>
      Object.fromEntries(
        [own, other, 'announce', 'desk'].map((topic) => [topic, (['read', 'publish', 'presence'] as const).filter((right) => may(user, topic, right)).join('+')]),
      );
    expect(rights(customer)).toEqual({ [own]: 'read+publish', [other]: '', announce: 'read', desk: 'publish+presence' });
    expect(rights(agent)).toEqual({ [own]: 'read+publish+presence', [other]: 'read+publish+presence', announce: 'read+publish', desk: 'read' });
    expect(rights('demo-visitor')).toEqual({ [own]: '', [other]: '', announce: '', desk: '' });

    // And no demo token writes to a mailbox, even where tokens without `pub` may write anywhere.
    const policy = createPublishPolicy({ publishDefault: 'any' });
    for (const user of users) {
      for (const recipient of [agent, customer, user]) {
        expect(() => policy.assertMayPublishTo(claimsOf(user), [recipient]), `${user} → ${recipient}`).toThrow(expect.objectContaining({ code: 'forbidden_recipient' }));
      }
    }
  });

  it('rejects other methods and leaves other paths to the next middleware', async () => {
    expect((await get('/demo/', 'POST')).status).toBe(405);
    expect((await get('/demo/', 'HEAD')).status).toBe(200);
    const other = await get('/v1/poll');
    expect(other.status).toBe(418);
    expect((await get('/demonstration')).status).toBe(418);
  });

  it('says how to build the legacy bundle when it is missing', async () => {
    const app = new Koa();
    app.use(createDemoMiddleware({ demoDir: join(repoRoot, 'demo'), legacyBundlePath: join(tmpdir(), 'no-such-bundle.js'), issueToken: async () => 'x' }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/client/longpoll.legacy.js`);
    await new Promise((resolve) => server.close(resolve));
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { message: string } }).error.message).toContain('npm run build:legacy');
  });
});
