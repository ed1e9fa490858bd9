import { request } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoMiddleware } from '../../src/http/demo.js';
import { repoRoot } from './support/legacy-bundle.js';

let baseUrl: string;
let closeServer: () => Promise<void>;
const issued: string[] = [];
const issuedClaims = new Map<string, { pub: string[] }>();

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
function get(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(baseUrl);
    const outgoing = request({ hostname, port, path, method }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
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

  it('mints tokens for demo users only', async () => {
    const response = await get('/demo/token?user=demo-customer');
    expect(response.status).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(response.body)).toEqual({ token: 'token-for-demo-customer' });
    expect(issued).toEqual(['demo-customer']);

    for (const query of ['user=alice', 'user=demo-', 'user=demo-a&user=demo-b', '', 'user=demo-x%20y']) {
      const rejected = await get(`/demo/token?${query}`);
      expect(rejected.status, query).toBe(400);
      expect(JSON.parse(rejected.body), query).toMatchObject({ error: { code: 'invalid_demo_user' } });
    }
    expect(issued).toEqual(['demo-customer']);
  });

  it('lets customers write only to agents and agents only to customers (pub claim)', async () => {
    for (const user of ['demo-customer', 'demo-customer-2', 'demo-agent', 'demo-agent-7', 'demo-visitor']) {
      expect((await get(`/demo/token?user=${user}`)).status).toBe(200);
    }
    expect(Object.fromEntries(issuedClaims)).toEqual({
      'demo-customer': { pub: ['demo-agent*'] },
      'demo-customer-2': { pub: ['demo-agent*'] },
      'demo-agent': { pub: ['demo-customer*'] },
      'demo-agent-7': { pub: ['demo-customer*'] },
      'demo-visitor': { pub: [] },
    });
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
