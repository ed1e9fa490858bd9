import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexFactory from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markMigratedByNewerRelease, requireRealServersOrWarn, TEST_SECRET, uniqueName } from '../support/backends.js';
import { runCli } from '../support/process.js';

/**
 * `start` and `migrate` against a database or Redis they cannot use: one line on stderr naming
 * what failed and how to fix it, exit 2 (like a configuration error), never the password, no stack
 * trace and no HTTP wording. A failure the CLI does not recognise keeps its stack and exit 1.
 */

const PASSWORD = 'hunter2-Do-Not-Print';

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The whole output (stdout and stderr) is the one line; nothing else, and nothing it must not say. */
function expectOneLine(result: { code: number | null; stdout: string; stderr: string }, line: RegExp): void {
  expect(result.stdout).toBe('');
  const output = result.stderr;
  expect(output.split('\n')).toEqual([expect.stringMatching(line), '']);
  expect(output).not.toContain('    at ');
  expect(output).not.toContain(PASSWORD);
  expect(output).not.toMatch(/status|503|store_unavailable|retry later/);
  expect(result.code).toBe(2);
}

describe('start / migrate with an unreachable database or Redis', () => {
  let dataDir: string;
  let env: Record<string, string>;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'lpg-cli-startup-'));
    env = { SQLITE_FILE: join(dataDir, 'gateway.sqlite'), GATEWAY_JWT_SECRET: TEST_SECRET, PORT: '0', HOST: '127.0.0.1', GATEWAY_WORKERS: '1' };
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it.each([['start'], ['migrate']])('%s: MYSQL_URL on a closed port → one line naming host:port and MYSQL_URL, exit 2', async (command) => {
    const port = await closedPort();
    const result = await runCli([command], { ...env, MYSQL_URL: `mysql://lpg_user:${PASSWORD}@127.0.0.1:${port}/x` });
    expectOneLine(result, new RegExp(`^longpoll-gateway: cannot reach MySQL at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): is it running\\? Check MYSQL_URL\\.$`));
  });

  it('start: REDIS_URL on a closed port → one line naming host:port and REDIS_URL, exit 2', async () => {
    const port = await closedPort();
    const result = await runCli(['start'], { ...env, REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}` });
    expectOneLine(result, new RegExp(`^longpoll-gateway: cannot reach Redis at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): is it running\\? Check REDIS_URL\\.$`));
  });

  it('start: REDIS_CLUSTER_NODES on closed ports → one line naming the nodes and REDIS_CLUSTER_NODES, exit 2', async () => {
    const [first, second] = [await closedPort(), await closedPort()];
    const result = await runCli(['start'], { ...env, REDIS_CLUSTER_NODES: `127.0.0.1:${first},127.0.0.1:${second}` });
    expectOneLine(
      result,
      new RegExp(`^longpoll-gateway: cannot reach the Redis Cluster at 127\\.0\\.0\\.1:${first},127\\.0\\.0\\.1:${second} \\(.+\\): is it running\\? Check REDIS_CLUSTER_NODES\\.$`),
    );
  });

  it('start: a port already in use → one line naming it and PORT, exit 2', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      const result = await runCli(['start'], { ...env, PORT: String(port) });
      expectOneLine(result, new RegExp(`^longpoll-gateway: 127\\.0\\.0\\.1:${port} is already in use \\(EADDRINUSE\\): stop what listens there, or set PORT \\(or HOST\\) to another\\.$`));
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it.each([['start'], ['migrate']])('%s: a SQLITE_FILE whose folder is a file → one line naming the file and SQLITE_FILE, exit 2', async (command) => {
    const blocker = join(dataDir, `not-a-folder-${command}`);
    writeFileSync(blocker, 'a file where a folder should be');
    const sqliteFile = join(blocker, 'gateway.sqlite');
    const result = await runCli([command], { ...env, SQLITE_FILE: sqliteFile });
    expectOneLine(result, new RegExp(`^longpoll-gateway: cannot open the SQLite file ${sqliteFile.replace(/[.*+?^\${}()|[\]\\]/g, '\\$&')} \\((ENOTDIR|EEXIST)\\): check SQLITE_FILE; its folder must be a directory this user can write\\.$`));
  });

  it('start: a MySQL host that does not resolve → one line naming the host, exit 2', async () => {
    const result = await runCli(['start'], { ...env, MYSQL_URL: `mysql://lpg_user:${PASSWORD}@no-such-host.invalid:3306/x` });
    expectOneLine(result, /^longpoll-gateway: cannot resolve the MySQL host "no-such-host\.invalid" \((ENOTFOUND|EAI_AGAIN)\): check the host in MYSQL_URL\.$/);
  });
});

const real = requireRealServersOrWarn('CLI start-up errors against MariaDB / Redis');

describe.runIf(real)('start / migrate against the real MariaDB and Redis with wrong settings', () => {
  let dataDir: string;
  let env: Record<string, string>;
  const databases: string[] = [];
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'lpg-cli-startup-real-'));
    env = { SQLITE_FILE: join(dataDir, 'gateway.sqlite'), GATEWAY_JWT_SECRET: TEST_SECRET, PORT: '0', HOST: '127.0.0.1', GATEWAY_WORKERS: '1' };
  });
  afterAll(async () => {
    rmSync(dataDir, { recursive: true, force: true });
    if (databases.length === 0) return;
    const admin = knexFactory({ client: 'mysql2', connection: process.env.MYSQL_URL!, pool: { min: 0, max: 1 } });
    try {
      for (const name of databases) await admin.raw('DROP DATABASE IF EXISTS ??', [name]);
    } finally {
      await admin.destroy();
    }
  });

  function mysqlUrl(change: (url: URL) => void): string {
    const url = new URL(process.env.MYSQL_URL!);
    change(url);
    return url.toString();
  }

  it.each([['start'], ['migrate']])('%s: a wrong MySQL password → one line naming the user and MYSQL_URL, exit 2', async (command) => {
    const url = mysqlUrl((u) => (u.password = PASSWORD));
    const user = decodeURIComponent(new URL(url).username);
    const result = await runCli([command], { ...env, MYSQL_URL: url });
    expectOneLine(
      result,
      new RegExp(`^longpoll-gateway: MySQL refused the login for user "${user}" \\(ER_ACCESS_DENIED_ERROR\\): check the user and password in MYSQL_URL\\.$`),
    );
  });

  it.each([['start'], ['migrate']])('%s: an unknown database name → one line naming the database, exit 2', async (command) => {
    const database = uniqueName('lpg_missing_');
    const result = await runCli([command], { ...env, MYSQL_URL: mysqlUrl((u) => (u.pathname = `/${database}`)) });
    expectOneLine(result, new RegExp(`^longpoll-gateway: MySQL has no database "${database}" \\(ER_BAD_DB_ERROR\\): create it .*or fix the database name in MYSQL_URL\\.$`));
  });

  it.each([['start'], ['migrate']])('%s: a MYSQL_URL with no database name → one line saying so, exit 2', async (command) => {
    const result = await runCli([command], { ...env, MYSQL_URL: mysqlUrl((u) => (u.pathname = '/')) });
    expectOneLine(result, /^longpoll-gateway: MYSQL_URL names no database \(ER_NO_DB_ERROR\): end it with one, like mysql:\/\/user:password@.+\/longpoll\.$/);
  });

  it('start: Redis refusing the login → one line naming REDIS_URL, exit 2', async () => {
    const url = new URL(process.env.REDIS_URL!);
    url.username = 'no-such-user';
    url.password = PASSWORD;
    const result = await runCli(['start'], { ...env, REDIS_URL: url.toString() });
    expectOneLine(result, /^longpoll-gateway: Redis refused the login \(WRONGPASS\): check the user and password in REDIS_URL\.$/);
  });

  it('start --workers 2: Redis on a closed port fails the start once, before any worker is forked', async () => {
    const port = await closedPort();
    const result = await runCli(['start', '--workers', '2'], { ...env, MYSQL_URL: process.env.MYSQL_URL!, REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:${port}` });
    expectOneLine(result, new RegExp(`^longpoll-gateway: cannot reach Redis at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): is it running\\? Check REDIS_URL\\.$`));
  });

  it('start --workers 2: a wrong MySQL password fails the start once, before the migrations', async () => {
    const result = await runCli(['start', '--workers', '2'], { ...env, MYSQL_URL: mysqlUrl((u) => (u.password = PASSWORD)), REDIS_URL: process.env.REDIS_URL! });
    expectOneLine(result, /^longpoll-gateway: MySQL refused the login for user ".*" \(ER_ACCESS_DENIED_ERROR\): check the user and password in MYSQL_URL\.$/);
  });

  it('start: a failure it does not recognise (a schema from a newer release) keeps its stack and exit 1', async () => {
    const database = uniqueName('lpg_newer_');
    databases.push(database);
    const admin = knexFactory({ client: 'mysql2', connection: process.env.MYSQL_URL!, pool: { min: 0, max: 1 } });
    const url = mysqlUrl((u) => (u.pathname = `/${database}`));
    try {
      await admin.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', [database]);
    } finally {
      await admin.destroy();
    }
    await markMigratedByNewerRelease(url);
    const result = await runCli(['start'], { ...env, MYSQL_URL: url });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('999_from_a_newer_release');
    expect(result.stderr).toContain('    at ');
  });
});
