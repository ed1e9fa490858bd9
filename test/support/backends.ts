import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import knexFactory from 'knex';
import { afterAll, beforeAll } from 'vitest';
import { createMemoryBus } from '../../src/bus/memory-bus.js';
import { createRedisBus } from '../../src/bus/redis-bus.js';
import { createRedisClusterBus } from '../../src/bus/redis-cluster-bus.js';
import { parseClusterNodes } from '../../src/config.js';
import type { Bus } from '../../src/bus/types.js';
import { createKnex, createKnexStore, type KnexStore } from '../../src/store/knex/index.js';
import type { Clock } from '../../src/core/model.js';
import type { MessageStore } from '../../src/store/types.js';
import type { Knex } from 'knex';

/**
 * Every storage and bus suite runs against both the embedded defaults (SQLite + in-process bus)
 * and the real servers (MariaDB + Redis from MYSQL_URL / REDIS_URL). With CI=true a missing real
 * server fails the run; locally the real variant is skipped, loudly.
 */
export interface Backend {
  name: 'embedded' | 'mysql+redis' | 'mysql+redis-cluster';
  real: boolean;
  /** A fresh, isolated store (own database / in-memory file); closed by `cleanup`. */
  createStore(clock?: Clock): Promise<KnexStore>;
  /** A connection to a fresh, empty database (no migrations run); closed by `cleanup`. */
  createEmptyDatabase(): Promise<Knex>;
  /** A bus with a prefix unique to this call, so parallel suites never hear each other. */
  createBus(prefix?: string): Promise<Bus>;
  /** Env for startGateway sharing one database + prefix (for multi-process tests). */
  gatewayEnv(): Promise<Record<string, string>>;
  cleanup(): Promise<void>;
}

export const TEST_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

export function realServersConfigured(): boolean {
  return Boolean(process.env.MYSQL_URL && process.env.REDIS_URL);
}

let warned = false;
export function requireRealServersOrWarn(what: string): boolean {
  if (realServersConfigured()) return true;
  if (process.env.CI === 'true') {
    throw new Error(`CI=true but MYSQL_URL / REDIS_URL are not set: ${what} cannot run. Start them with scripts/services.sh up.`);
  }
  if (!warned) {
    warned = true;
    console.warn(
      `\n!!! SKIPPED real-server variants (${what}): MYSQL_URL / REDIS_URL not set.\n!!! Run: eval "$(bash scripts/services.sh up)" && npm test\n`,
    );
  }
  return false;
}

/** A source of user ids unique within a test file: `userIds('engine')()` → `engine-user-1`, … */
export function userIds(prefix: string): () => string {
  let count = 0;
  return () => `${prefix}-user-${++count}`;
}

export function uniqueName(prefix: string): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

function embeddedBackend(): Backend {
  const stores: MessageStore[] = [];
  const buses: Bus[] = [];
  const connections: Knex[] = [];
  const directories: string[] = [];
  return {
    name: 'embedded',
    real: false,
    async createStore(clock) {
      const store = await createKnexStore({ knex: createKnex({ sqliteFile: ':memory:' }), ...(clock ? { clock } : {}) });
      stores.push(store);
      return store;
    },
    async createEmptyDatabase() {
      const directory = mkdtempSync(join(tmpdir(), 'lpg-test-'));
      directories.push(directory);
      const knex = createKnex({ sqliteFile: join(directory, 'gateway.sqlite') });
      connections.push(knex);
      return knex;
    },
    async createBus() {
      const bus = createMemoryBus();
      buses.push(bus);
      return bus;
    },
    async gatewayEnv() {
      return { SQLITE_FILE: ':memory:', GATEWAY_JWT_SECRET: TEST_SECRET };
    },
    async cleanup() {
      await Promise.all([...stores.map((s) => s.close()), ...buses.map((b) => b.close()), ...connections.map((k) => k.destroy())]);
      for (const directory of directories) rmSync(directory, { recursive: true, force: true });
    },
  };
}

function realBackend(bus: 'redis' | 'redis-cluster' = 'redis'): Backend {
  const mysqlUrl = process.env.MYSQL_URL!;
  const redisUrl = process.env.REDIS_URL!;
  const clusterNodes = process.env.REDIS_CLUSTER_NODES ?? '';
  const databases: string[] = [];
  const stores: MessageStore[] = [];
  const buses: Bus[] = [];
  const connections: Knex[] = [];

  async function createDatabase(): Promise<string> {
    const name = uniqueName('lpg_test_');
    const admin = knexFactory({ client: 'mysql2', connection: mysqlUrl, pool: { min: 0, max: 1 } });
    try {
      await admin.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', [name]);
    } finally {
      await admin.destroy();
    }
    databases.push(name);
    const url = new URL(mysqlUrl);
    url.pathname = `/${name}`;
    return url.toString();
  }

  return {
    name: bus === 'redis' ? 'mysql+redis' : 'mysql+redis-cluster',
    real: true,
    async createStore(clock) {
      const store = await createKnexStore({ knex: createKnex({ mysqlUrl: await createDatabase() }), ...(clock ? { clock } : {}) });
      stores.push(store);
      return store;
    },
    async createEmptyDatabase() {
      const knex = createKnex({ mysqlUrl: await createDatabase() });
      connections.push(knex);
      return knex;
    },
    async createBus(prefix) {
      const created =
        bus === 'redis'
          ? await createRedisBus({ url: redisUrl, prefix: prefix ?? `${uniqueName('t')}:` })
          : await createRedisClusterBus({ nodes: parseClusterNodes(clusterNodes), prefix: prefix ?? `${uniqueName('t')}:` });
      buses.push(created);
      return created;
    },
    async gatewayEnv() {
      return {
        MYSQL_URL: await createDatabase(),
        ...(bus === 'redis' ? { REDIS_URL: redisUrl } : { REDIS_CLUSTER_NODES: clusterNodes }),
        REDIS_PREFIX: `${uniqueName('t')}:`,
        GATEWAY_JWT_SECRET: TEST_SECRET,
      };
    },
    async cleanup() {
      await Promise.all([...stores.map((s) => s.close()), ...buses.map((b) => b.close()), ...connections.map((k) => k.destroy())]);
      if (databases.length === 0) return;
      const admin = knexFactory({ client: 'mysql2', connection: mysqlUrl, pool: { min: 0, max: 1 } });
      try {
        for (const name of databases) await admin.raw('DROP DATABASE IF EXISTS ??', [name]);
      } finally {
        await admin.destroy();
      }
    },
  };
}

/**
 * Cases for `describe.each(backendCases('...'))('$name', ({ make }) => …)`: embedded always,
 * mysql+redis when configured (required in CI).
 */
export function backendCases(what: string): Array<{ name: Backend['name']; make: () => Backend }> {
  const cases: Array<{ name: Backend['name']; make: () => Backend }> = [{ name: 'embedded', make: embeddedBackend }];
  if (requireRealServersOrWarn(what)) cases.push({ name: 'mysql+redis', make: realBackend });
  return cases;
}

/**
 * The MariaDB + Redis case alone, for suites that need real servers (several processes sharing a
 * database, EXPLAIN plans, faults): empty locally without them (loudly), a failure with CI=true.
 */
export function mysqlRedisCases(what: string): Array<{ name: Backend['name']; make: () => Backend }> {
  return backendCases(what).filter((c) => c.name === 'mysql+redis');
}

/**
 * The Redis Cluster variant (MariaDB + sharded pub/sub on REDIS_CLUSTER_NODES, from
 * `scripts/redis-cluster.sh up`), for the bus contract and the scale-out suites only. Empty
 * locally without the cluster (loudly); with CI=true a missing cluster fails the run.
 */
export function redisClusterCases(what: string): Array<{ name: Backend['name']; make: () => Backend }> {
  if (!requireRealServersOrWarn(what)) return [];
  if (!process.env.REDIS_CLUSTER_NODES) {
    if (process.env.CI === 'true') {
      throw new Error(`CI=true but REDIS_CLUSTER_NODES is not set: ${what} cannot run. Start it with scripts/redis-cluster.sh up.`);
    }
    console.warn(`\n!!! SKIPPED Redis Cluster variant (${what}): REDIS_CLUSTER_NODES not set.\n!!! Run: eval "$(bash scripts/redis-cluster.sh up)"\n`);
    return [];
  }
  return [{ name: 'mysql+redis-cluster', make: () => realBackend('redis-cluster') }];
}

/**
 * The backend of a suite, made before its tests and cleaned up (stores, buses, databases) after
 * them: call it at the top of a `describe`, then use it inside tests and hooks like the Backend
 * it stands for.
 *
 * @example
 * describe.each(backendCases('store contract'))('store on $name', ({ make }) => {
 *   const backend = useBackend(make);
 *   it('…', async () => {
 *     const store = await backend.createStore();
 *   });
 * });
 */
export function useBackend(make: () => Backend): Backend {
  let backend: Backend | undefined;
  beforeAll(() => {
    backend = make();
  });
  afterAll(async () => {
    await backend?.cleanup();
  });
  const made = () => {
    if (!backend) throw new Error('useBackend: the backend is made in beforeAll; use it inside tests or hooks');
    return backend;
  };
  return {
    get name() {
      return made().name;
    },
    get real() {
      return made().real;
    },
    createStore: (clock) => made().createStore(clock),
    createEmptyDatabase: () => made().createEmptyDatabase(),
    createBus: (prefix) => made().createBus(prefix),
    gatewayEnv: () => made().gatewayEnv(),
    cleanup: () => made().cleanup(),
  };
}

/**
 * Marks a MySQL database as migrated by a newer release (a migration this version does not have),
 * which knex refuses to migrate: a start that fails after its pool connected.
 */
export async function markMigratedByNewerRelease(mysqlUrl: string): Promise<void> {
  const db = knexFactory({ client: 'mysql2', connection: mysqlUrl, pool: { min: 0, max: 1 } });
  try {
    await db.schema.createTable('knex_migrations', (table) => {
      table.increments('id');
      table.string('name');
      table.integer('batch');
      table.timestamp('migration_time');
    });
    await db('knex_migrations').insert({ name: '999_from_a_newer_release', batch: 1, migration_time: new Date() });
  } finally {
    await db.destroy();
  }
}
