import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, ROOT } from '../support/process.js';

const run = promisify(execFile);

/**
 * What a user gets from the registry: the packed tarball installed into a project of its own,
 * outside this repository, so nothing resolves from our sources or our node_modules.
 */

const CHECK = `
import { createServer } from 'node:http';
import { createGateway, createTokenIssuer, ERROR_STATUS } from 'longpoll-gateway';

const secret = 'a-secret-of-at-least-32-characters!!';
const gateway = await createGateway({}, { auth: { jwtSecret: secret } });
const server = createServer(gateway.callback);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = 'http://127.0.0.1:' + server.address().port;
const issuer = createTokenIssuer({ secret });
const auth = async (user) => ({ Authorization: 'Bearer ' + (await issuer.issue(user)) });

const publish = await fetch(url + '/v1/messages', {
  method: 'POST',
  headers: { ...(await auth('alice')), 'Content-Type': 'application/json' },
  body: JSON.stringify({ to: 'bob', body: { text: 'from the tarball' } }),
});
const poll = await fetch(url + '/v1/poll?wait=1', { headers: await auth('bob') });
// The client from the same tarball resumes from cursor 0: the poll above did not ack, so it gets the message too.
const client = await import('longpoll-gateway/client');
const received = await new Promise((resolve) => {
  const poller = client.createLongPoller({ url, wait: 1, token: () => issuer.issue('bob'), onMessages: (messages) => void poller.stop().then(() => resolve(messages.map((m) => m.body))) });
  poller.start();
});
const result = { resolved: import.meta.resolve('longpoll-gateway'), published: publish.status, poll: await poll.json(), forbidden: ERROR_STATUS.forbidden, received };
gateway.drain();
await new Promise((resolve) => server.close(resolve));
await gateway.close();
console.log(JSON.stringify(result));
`;

/** A TypeScript consumer: the public types resolve (Koa's included) and refuse a wrong option. */
const TYPED_CHECK = `
import type Koa from 'koa';
import { createGateway, type Gateway, type GatewayOptions } from 'longpoll-gateway';
import { createLongPoller, type PollerStatus } from 'longpoll-gateway/client';

const options: GatewayOptions = { auth: { jwtSecret: 'x'.repeat(32) }, poll: { waitMaxSeconds: 20 } };
const gateway: Gateway = await createGateway({}, options);
const app: Koa = gateway.app;
const status = (value: PollerStatus): string => value.type;
// @ts-expect-error an unknown poll setting is refused
const wrong: GatewayOptions = { poll: { waitMaxSecs: 20 } };
export { app, status, wrong, createLongPoller };
`;

describe('the packed package', () => {
  const directory = mkdtempSync(join(tmpdir(), 'lpg-pack-'));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  it('installs into a fresh project, where createGateway starts, round-trips a message and closes', async () => {
    assertBuilt();
    const started = Date.now();
    const { stdout: packed } = await run('npm', ['pack', '--silent', '--pack-destination', directory], { cwd: ROOT, timeout: 60_000 });
    const tarball = join(directory, packed.trim().split('\n').at(-1)!);

    const project = join(directory, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'embedding-check', private: true, type: 'module' }));
    // Without install scripts: better-sqlite3's would try to download a prebuilt binary and, offline,
    // compile SQLite for a minute. The binary our own install built is the same version for the
    // same Node, so it is copied in instead; any other version is rebuilt.
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: project, timeout: 120_000 });
    const installed = join(project, 'node_modules');
    const versionOf = (root: string) => (JSON.parse(readFileSync(join(root, 'better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
    const binary = 'better-sqlite3/build/Release/better_sqlite3.node';
    if (versionOf(installed) === versionOf(join(ROOT, 'node_modules')) && existsSync(join(ROOT, 'node_modules', binary))) {
      mkdirSync(join(installed, 'better-sqlite3/build/Release'), { recursive: true });
      copyFileSync(join(ROOT, 'node_modules', binary), join(installed, binary));
    } else {
      await run('npm', ['rebuild', 'better-sqlite3'], { cwd: project, timeout: 300_000 });
    }
    for (const file of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/db/migrations/001_create_messages.js', 'bin/longpoll-gateway.js', 'dist/client/longpoll.legacy.js']) {
      expect(existsSync(join(installed, 'longpoll-gateway', file)), file).toBe(true);
    }

    writeFileSync(join(project, 'check-types.ts'), TYPED_CHECK);
    const tsc = join(ROOT, 'node_modules/typescript/lib/tsc.js');
    const compilerFlags = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck', 'check-types.ts'];
    await expect(run(process.execPath, [tsc, ...compilerFlags], { cwd: project, timeout: 60_000 })).resolves.toBeDefined();

    writeFileSync(join(project, 'check.mjs'), CHECK);
    const { stdout } = await run(process.execPath, ['check.mjs'], { cwd: project, timeout: 30_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { resolved: string; published: number; poll: unknown; forbidden: number; received: unknown };
    expect(result.resolved).toBe(`file://${installed}/longpoll-gateway/dist/src/index.js`);
    expect(result.published).toBe(201);
    expect(result.poll).toMatchObject({ messages: [{ from: 'alice', body: { text: 'from the tarball' } }], cursor: expect.any(Number) });
    expect(result.forbidden).toBe(403);
    expect(result.received).toEqual([{ text: 'from the tarball' }]);
    console.log(`pack + install + round trip: ${Date.now() - started} ms`);
  }, 180_000);
});
