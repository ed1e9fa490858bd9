import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { createKnex, createKnexStore } from '../../src/store/knex/index.js';
import { migrateToLatest } from '../../src/store/migrations.js';
import { mysqlRedisCases, useBackend } from '../support/backends.js';

const realCases = mysqlRedisCases('MySQL pool settings');

describe.skipIf(realCases.length === 0)('MySQL statement timeout and pool settings', () => {
  // Cleaned up (its databases dropped) after the connections below are closed.
  const backend = useBackend(() => realCases[0]!.make());
  let databaseUrl: string;
  const opened: Knex[] = [];

  beforeAll(async () => {
    databaseUrl = (await backend.gatewayEnv()).MYSQL_URL!;
  });
  afterAll(async () => {
    await Promise.all(opened.map((knex) => knex.destroy()));
  });

  function open(options: Parameters<typeof createKnex>[0]): Knex {
    const knex = createKnex({ mysqlUrl: databaseUrl, ...options });
    opened.push(knex);
    return knex;
  }

  it('sets the session statement limit (MariaDB: seconds) and aborts a statement that runs past it', async () => {
    const knex = open({ mysqlStatementTimeoutMs: 250, mysqlPoolMax: 1 });
    const [rows] = (await knex.raw('SELECT @@SESSION.max_statement_time AS limit_s')) as [Array<{ limit_s: string | number }>];
    expect(Number(rows[0]!.limit_s)).toBeCloseTo(0.25, 3);
    const started = Date.now();
    await expect(knex.raw('SELECT SLEEP(3)')).rejects.toMatchObject({ errno: 1969 });
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('turns a statement timeout into a retryable store_unavailable (503) in the store', async () => {
    const knex = open({ mysqlStatementTimeoutMs: 300, mysqlPoolMax: 2 });
    const store = await createKnexStore({ knex });
    await store.insertMessage({ userId: 'tt-user', senderId: 'tt-sender', body: '"x"' });
    // Another session holds the row lock, so the store's ack UPDATE would wait innodb_lock_wait_timeout
    // (5 s); the 300 ms statement limit ends it first.
    const blocker = open({ mysqlPoolMax: 1 });
    await blocker.transaction(async (trx) => {
      await trx.raw('SELECT id FROM messages WHERE user_id = ? FOR UPDATE', ['tt-user']);
      const started = Date.now();
      await expect(store.ackThrough('tt-user', 1)).rejects.toMatchObject({ code: 'store_unavailable', status: 503 });
      expect(Date.now() - started).toBeLessThan(3_000);
    });
  });

  it('leaves statements unlimited by default and honours the pool size', async () => {
    const knex = open({ mysqlPoolMax: 3 });
    const [rows] = (await knex.raw('SELECT @@SESSION.max_statement_time AS limit_s')) as [Array<{ limit_s: string | number }>];
    expect(Number(rows[0]!.limit_s)).toBe(0);
    expect(knex.client.pool.max).toBe(3);
  });

  it('lets several gateways migrate a fresh database at once: the later ones wait for the lock', async () => {
    const fresh = (await backend.gatewayEnv()).MYSQL_URL!;
    const knexes = Array.from({ length: 4 }, () => {
      const knex = createKnex({ mysqlUrl: fresh, mysqlPoolMax: 2 });
      opened.push(knex);
      return knex;
    });
    await expect(Promise.all(knexes.map((knex) => migrateToLatest(knex)))).resolves.toHaveLength(4);
    const [rows] = (await knexes[0]!.raw('SELECT COUNT(*) AS n FROM knex_migrations')) as [Array<{ n: number }>];
    expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it('opens a replacement connection after the server killed the pooled one', async () => {
    const knex = open({ mysqlPoolMax: 1, mysqlReconnectIntervalMs: 20 });
    const [first] = (await knex.raw('SELECT CONNECTION_ID() AS id')) as [Array<{ id: number }>];
    const admin = open({ mysqlPoolMax: 1 });
    await admin.raw(`KILL CONNECTION ${Number(first[0]!.id)}`);
    // The first query after the kill may fail (the dead socket is found out by using it); the
    // pool then discards it and the next acquire connects again.
    await knex.raw('SELECT 1').catch(() => {});
    const [second] = (await knex.raw('SELECT CONNECTION_ID() AS id')) as [Array<{ id: number }>];
    expect(second[0]!.id).not.toBe(first[0]!.id);
  });
});
