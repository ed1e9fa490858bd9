import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import knexFactory from 'knex';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../src/start-from-env.js';
import { backendCases, markMigratedByNewerRelease, TEST_SECRET, useBackend } from './support/backends.js';

/**
 * A gateway that fails to start must close whatever it had opened before the failing step: in a
 * process that goes on (a test runner, a host application retrying the start) a leaked pool,
 * Redis connection or timer keeps running, and keeps the process alive.
 */

const WATCHED_RESOURCES = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'];
function openResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) if (WATCHED_RESOURCES.includes(name)) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

/** The kinds of open resource of which there are more now than in `before`. */
function moreThanBefore(before: Record<string, number>): Record<string, number> {
  const now = openResources();
  return Object.fromEntries(Object.entries(now).filter(([name, count]) => count > (before[name] ?? 0)));
}

/** Timers started while `run` runs; unref'd ones (the purge timer, the receipt sweep) included. */
async function timersStartedDuring(run: () => Promise<unknown>): Promise<{ outcome: PromiseSettledResult<unknown>; timers: NodeJS.Timeout[] }> {
  const timers: NodeJS.Timeout[] = [];
  const realSetTimeout = globalThis.setTimeout;
  const realSetInterval = globalThis.setInterval;
  const recording =
    <F extends (...args: never[]) => NodeJS.Timeout>(real: F) =>
    (...args: Parameters<F>) => {
      const timer = real(...args);
      // Short ones are connect and query timeouts that end with their attempt.
      if (((args[1] as number | undefined) ?? 0) >= 1_000) timers.push(timer);
      return timer;
    };
  globalThis.setTimeout = recording(realSetTimeout) as unknown as typeof setTimeout;
  globalThis.setInterval = recording(realSetInterval) as unknown as typeof setInterval;
  try {
    const [outcome] = await Promise.allSettled([run()]);
    return { outcome: outcome!, timers };
  } finally {
    globalThis.setTimeout = realSetTimeout;
    globalThis.setInterval = realSetInterval;
  }
}

/** Cleared or fired: Node marks a Timeout destroyed then. */
const isPending = (timer: NodeJS.Timeout) => !(timer as unknown as { _destroyed: boolean })._destroyed;

function openFilesUnder(directory: string): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(directory) ? [target] : [];
    } catch {
      return [];
    }
  });
}

let blocker: Server;
let busyPort: number;
beforeAll(async () => {
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  busyPort = (blocker.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

/** Starts a gateway that must fail, and checks that nothing it opened is left running. */
async function expectFailedStartToCloseEverything(env: Record<string, string>, error: RegExp): Promise<void> {
  const before = openResources();
  const { outcome, timers } = await timersStartedDuring(() => startGateway({ HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...env }));
  expect(outcome.status).toBe('rejected');
  expect(String((outcome as PromiseRejectedResult).reason)).toMatch(error);
  // Closing takes a moment to finish (sockets end, ioredis' close guard fires); a leaked purge
  // timer or receipt sweep would stay pending for good.
  const describeTimer = (timer: NodeJS.Timeout) => String((timer as unknown as { _onTimeout: () => void })._onTimeout).slice(0, 300);
  await expect.poll(() => timers.filter(isPending).map(describeTimer), { timeout: 5_000 }).toEqual([]);
  await expect.poll(() => moreThanBefore(before), { timeout: 5_000 }).toEqual({});
}

describe('a gateway that fails to start on the embedded backend', () => {
  let directory: string;
  afterEach(() => rmSync(directory, { recursive: true, force: true }));

  it('closes its SQLite store, bus, purge timer and server when the port is in use', async () => {
    directory = mkdtempSync(join(tmpdir(), 'lpg-start-fail-'));
    const env = { PORT: String(busyPort), SQLITE_FILE: join(directory, 'gateway.sqlite'), GATEWAY_JWT_SECRET: TEST_SECRET, RETENTION_INTERVAL_S: '1' };
    await expectFailedStartToCloseEverything(env, /EADDRINUSE/);
    // SQLite holds its database file open for as long as the connection lives.
    expect(openFilesUnder(directory)).toEqual([]);
  });
});

describe.each(backendCases('failed gateway start').filter(({ name }) => name !== 'embedded'))('a gateway that fails to start on $name', ({ make }) => {
  const backend = useBackend(make);
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL!);
  });
  afterAll(() => {
    redis.disconnect();
  });

  async function connectionsTo(mysqlUrl: string): Promise<number> {
    const database = new URL(mysqlUrl).pathname.slice(1);
    const admin = knexFactory({ client: 'mysql2', connection: process.env.MYSQL_URL!, pool: { min: 0, max: 1 } });
    try {
      const [rows] = (await admin.raw('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?', [database])) as [Array<{ n: number }>];
      return Number(rows[0]!.n);
    } finally {
      await admin.destroy();
    }
  }

  it('closes its MariaDB pool, Redis connections, purge timer and server when the port is in use', async () => {
    const env: Record<string, string> = { ...(await backend.gatewayEnv()), PORT: String(busyPort), RETENTION_INTERVAL_S: '1' };
    await expectFailedStartToCloseEverything(env, /EADDRINUSE/);
    await expect.poll(() => connectionsTo(env.MYSQL_URL!), { timeout: 5_000 }).toBe(0);
    expect(await redis.pubsub('CHANNELS', `${env.REDIS_PREFIX}*`)).toEqual([]);
  });

  it('closes its MariaDB pool when Redis cannot be reached', async () => {
    const env: Record<string, string> = { ...(await backend.gatewayEnv()), PORT: '0', REDIS_URL: 'redis://127.0.0.1:1' };
    await expectFailedStartToCloseEverything(env, /.+/);
    await expect.poll(() => connectionsTo(env.MYSQL_URL!), { timeout: 5_000 }).toBe(0);
  });

  it('closes its MariaDB pool when the migrations fail', async () => {
    // A schema migrated by a newer release: knex refuses to migrate a database that names a
    // migration this version does not have, after the pool has connected.
    const env: Record<string, string> = { ...(await backend.gatewayEnv()), PORT: '0' };
    await markMigratedByNewerRelease(env.MYSQL_URL!);
    await expectFailedStartToCloseEverything(env, /999_from_a_newer_release/);
    await expect.poll(() => connectionsTo(env.MYSQL_URL!), { timeout: 5_000 }).toBe(0);
  });
});
