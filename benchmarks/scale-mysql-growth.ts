/**
 * How the messages table grows per million messages on MariaDB, and what the retention purge of
 * acked messages costs per million. In a scratch database: insert `--rows` messages (multi-row
 * INSERTs; `--users` recipients, a client id on each, a `--body-bytes` JSON body), ANALYZE, read
 * data_length / index_length and each index's size, extrapolate linearly to 1e6 rows. Then mark
 * them all acked two days ago and delete them in batches of `--batch` the way the retention job
 * does (the store's purgeAcked), timing each batch.
 *
 *   eval "$(bash scripts/services.sh up)"
 *   npx tsx benchmarks/scale-mysql-growth.ts [--rows 100000] [--users 10000] [--body-bytes 100] [--batch 1000]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Knex } from 'knex';
import { createKnex, createKnexStore } from '../src/store/knex/index.js';
import { percentile, requireEnv, withScratchDatabase } from './scale-common.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    users: { type: 'string', default: '10000' },
    'body-bytes': { type: 'string', default: '100' },
    batch: { type: 'string', default: '1000' },
  },
});
const rows = Number(values.rows);
const users = Number(values.users);
const bodyBytes = Number(values['body-bytes']);
const batch = Number(values.batch);
requireEnv('MYSQL_URL');

const MiB = 1024 * 1024;
const perMillion = (bytes: number) => +((bytes / rows) * 1e6 / MiB).toFixed(1);

async function sizes(knex: Knex, database: string) {
  await knex.raw('ANALYZE TABLE messages');
  const [[table]] = (await knex.raw(
    'SELECT data_length, index_length, data_free FROM information_schema.TABLES WHERE table_schema = ? AND table_name = ?',
    [database, 'messages'],
  )) as [[{ data_length: number; index_length: number; data_free: number }]];
  const [indexes] = (await knex.raw(
    "SELECT index_name, stat_value * @@innodb_page_size AS bytes FROM mysql.innodb_index_stats WHERE database_name = ? AND table_name = ? AND stat_name = 'size'",
    [database, 'messages'],
  )) as [Array<{ index_name: string; bytes: number }>];
  return { table, indexes };
}

await withScratchDatabase(async (mysqlUrl, database) => {
  const knex = createKnex({ mysqlUrl, mysqlPoolMax: 4 });
  try {
    const store = await createKnexStore({ knex });
    const now = Date.now();
    const filler = randomBytes(Math.ceil(bodyBytes)).toString('base64').slice(0, Math.max(0, bodyBytes - 12));
    const insertStarted = performance.now();
    for (let start = 0; start < rows; start += 1000) {
      const chunk = Array.from({ length: Math.min(1000, rows - start) }, (_, k) => {
        const n = start + k;
        return {
          user_id: `user-${n % users}`,
          sender_id: `sender-${n % 997}`,
          client_msg_id: `${randomBytes(16).toString('hex')}`,
          body: JSON.stringify({ text: filler }),
          status: 'pending',
          delivery_cursor: null,
          created_at: now,
          acked_at: null,
        };
      });
      await knex('messages').insert(chunk);
    }
    const insertSeconds = (performance.now() - insertStarted) / 1000;
    const grown = await sizes(knex, database);

    // Retention: everything acked two days ago, then purged in bounded batches.
    await knex('messages').update({ status: 'acked', acked_at: now - 48 * 3600_000, delivery_cursor: 1 });
    const acked = await sizes(knex, database);
    const purge =
      'purgeAcked' in store && typeof store.purgeAcked === 'function'
        ? (before: number) => (store.purgeAcked as (before: number, limit: number) => Promise<number>)(before, batch)
        : async (before: number) => {
            const [result] = (await knex.raw('DELETE FROM messages WHERE status = ? AND acked_at < ? ORDER BY acked_at, id LIMIT ?', ['acked', before, batch])) as [{ affectedRows: number }];
            return result.affectedRows;
          };
    const batchMs: number[] = [];
    let deleted = 0;
    const purgeStarted = performance.now();
    for (;;) {
      const started = performance.now();
      const count = await purge(now - 24 * 3600_000);
      if (count === 0) break;
      batchMs.push(performance.now() - started);
      deleted += count;
    }
    const purgeSeconds = (performance.now() - purgeStarted) / 1000;
    const after = await sizes(knex, database);
    batchMs.sort((a, b) => a - b);

    const growth = {
      rows,
      'body bytes': bodyBytes,
      'data MiB per 1e6': perMillion(grown.table.data_length),
      'indexes MiB per 1e6': perMillion(grown.table.index_length),
      'total MiB per 1e6': perMillion(grown.table.data_length + grown.table.index_length),
      'bytes per row': Math.round((grown.table.data_length + grown.table.index_length) / rows),
      'total MiB per 1e6 once acked': perMillion(acked.table.data_length + acked.table.index_length),
      'insert rows/s (1000-row INSERTs)': Math.round(rows / insertSeconds),
    };
    const ackedIndex = new Map(acked.indexes.map((index) => [index.index_name, index.bytes]));
    const indexes = Object.fromEntries(
      grown.indexes.map((index) => [index.index_name, { 'pending MiB per 1e6': perMillion(index.bytes), 'acked MiB per 1e6': perMillion(ackedIndex.get(index.index_name) ?? 0) }]),
    );
    const retention = {
      deleted,
      'batch size': batch,
      batches: batchMs.length,
      'batch p50 ms': +percentile(batchMs, 0.5).toFixed(1),
      'batch p99 ms': +percentile(batchMs, 0.99).toFixed(1),
      'seconds per 1e6 acked': +((purgeSeconds / Math.max(1, deleted)) * 1e6).toFixed(1),
      'data_free MiB after purge': +(after.table.data_free / MiB).toFixed(1),
      via: 'purgeAcked' in store ? 'store.purgeAcked' : 'direct DELETE … ORDER BY acked_at, id LIMIT n',
    };
    console.table([growth]);
    console.table(indexes);
    console.table([retention]);
    console.log(JSON.stringify({ benchmark: 'scale-mysql-growth', date: new Date().toISOString(), growth, indexes, retention }));
  } finally {
    await knex.destroy();
  }
});
