import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { unackedByStatusQuery } from '../src/store/knex-store.js';
import type { MessageStore } from '../src/store/types.js';
import { backendCases, type Backend } from './support/backends.js';

const mysqlCases = backendCases('MySQL query plan and real out-of-order commits').filter((c) => c.name === 'mysql+redis');

describe.skipIf(mysqlCases.length === 0)('on real MariaDB', () => {
  let backend: Backend;
  let store: MessageStore & { knex: Knex };

  beforeAll(async () => {
    backend = mysqlCases[0]!.make();
    store = await backend.createStore();
    // Enough rows across users that the optimizer has a real choice to make.
    const rows = [];
    for (let i = 0; i < 2000; i += 1) {
      rows.push({ user_id: `u${i % 200}`, sender_id: 's', body: '1', status: i % 3 === 0 ? 'acked' : 'pending', created_at: i });
    }
    await store.knex.batchInsert('messages', rows, 500);
    await store.knex.raw('ANALYZE TABLE messages');
  });
  afterAll(async () => {
    await backend.cleanup();
  });

  it.each(['pending', 'delivered'] as const)('serves the %s poll query from the (user_id, status) index without filesort', async (status) => {
    const query = unackedByStatusQuery(store.knex, 'u7', status, 100).toSQL().toNative();
    const [plan] = (await store.knex.raw(`EXPLAIN ${query.sql}`, query.bindings)) as [Array<Record<string, unknown>>];
    expect(plan).toHaveLength(1);
    expect(plan[0]!.key).toBe('idx_messages_user_status');
    expect(plan[0]!.type).toMatch(/^(ref|range)$/);
    expect(String(plan[0]!.Extra ?? '')).not.toMatch(/filesort/i);
  });

  it('serves the ack update from the (user_id, status) index', async () => {
    const [plan] = (await store.knex.raw(
      "EXPLAIN UPDATE messages SET status='acked', acked_at=1 WHERE user_id=? AND status='delivered' AND delivery_cursor <= ?",
      ['u7', 1000],
    )) as [Array<Record<string, unknown>>];
    expect(plan[0]!.key).toBe('idx_messages_user_status');
  });

  it('delivers a lower id whose transaction commits after a higher id was delivered and acked', async () => {
    const bob = 'late-commit-bob';
    const slow = await store.knex.transaction();
    try {
      const [lowId] = await slow('messages').insert({ user_id: bob, sender_id: 's', body: '"ten"', status: 'pending', created_at: 1 });
      const high = await store.insertMessage({ userId: bob, senderId: 's', body: '"eleven"' });
      expect(high.id).toBeGreaterThan(Number(lowId));

      const seen = await store.deliverPending(bob, 0, 100);
      expect(seen.messages.map((m) => m.id)).toEqual([high.id]);
      await store.ackThrough(bob, seen.cursor);
      await slow.commit();

      expect(await store.ackThrough(bob, seen.cursor)).toBe(0);
      const late = await store.deliverPending(bob, seen.cursor, 100);
      expect(late.messages.map((m) => m.id)).toEqual([Number(lowId)]);
    } finally {
      if (!slow.isCompleted()) await slow.rollback();
    }
  });
});
