import { beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { ackQuery, mailboxSummaryQuery, pendingReadQuery } from '../../src/store/knex/index.js';
import { topicAgeCutQuery, topicHeadsQuery, topicOldestQuery, topicReadQuery, topicTrimQuery } from '../../src/store/knex/queries.js';
import type { MessageStore } from '../../src/store/types.js';
import { mysqlRedisCases, useBackend } from '../support/backends.js';

const mysqlCases = mysqlRedisCases('MySQL query plan and real out-of-order commits');

describe.skipIf(mysqlCases.length === 0)('on real MariaDB', () => {
  const backend = useBackend(() => mysqlCases[0]!.make());
  let store: MessageStore & { knex: Knex };

  beforeAll(async () => {
    store = await backend.createStore();
    // Enough rows across users that the optimizer has a real choice to make.
    const rows = [];
    for (let i = 0; i < 2000; i += 1) {
      rows.push({ user_id: `u${i % 200}`, sender_id: 's', body: '1', status: i % 3 === 0 ? 'acked' : 'pending', created_at: i, seq: Math.floor(i / 200) + 1 });
    }
    await store.knex.batchInsert('messages', rows, 500);
    await store.knex.batchInsert('mailboxes', Array.from({ length: 200 }, (_, u) => ({ user_id: `u${u}`, last_seq: 10 })), 200);
    // Topics beside them: streams under `#<name>`, a few long ones, trimmed part of the way.
    const topicRows = [];
    for (let i = 0; i < 2000; i += 1) topicRows.push({ user_id: `#room:${i % 10}`, sender_id: 's', body: '1', status: 'pending', created_at: i, seq: Math.floor(i / 10) + 1 });
    await store.knex.batchInsert('messages', topicRows, 500);
    await store.knex.batchInsert('mailboxes', Array.from({ length: 10 }, (_, t) => ({ user_id: `#room:${t}`, last_seq: 200, trimmed_seq: 0 })), 10);
    await store.knex.raw('ANALYZE TABLE messages, mailboxes');
  });

  async function explain(query: { toSQL(): { toNative(): { sql: string; bindings: readonly unknown[] } } }): Promise<Array<Record<string, unknown>>> {
    const native = query.toSQL().toNative();
    const [plan] = (await store.knex.raw(`EXPLAIN ${native.sql}`, native.bindings as never)) as [Array<Record<string, unknown>>];
    return plan;
  }

  it('serves every read of a batched poll read from the (user_id, status, seq) index without filesort', async () => {
    const plan = await explain(
      pendingReadQuery(store.knex, [
        { userId: 'u7', cursor: 0, limit: 100 },
        { userId: 'u8', cursor: 3, limit: 100 },
      ], Date.now()),
    );
    const messageReads = plan.filter((row) => row.table === 'messages');
    expect(messageReads).toHaveLength(2);
    for (const row of messageReads) {
      expect(row.key).toBe('idx_messages_user_status_seq');
      expect(row.type).toMatch(/^(ref|range)$/);
      expect(String(row.Extra ?? '')).not.toMatch(/filesort/i);
    }
    // The mailbox check is a primary-key lookup, not a scan.
    for (const row of plan.filter((r) => r.table === 'mailboxes')) expect(row.key).toBe('PRIMARY');
  });

  it('serves a batched ack update from the (user_id, status, seq) index', async () => {
    const plan = await explain(
      ackQuery(
        store.knex,
        [
          { userId: 'u7', cursor: 5 },
          { userId: 'u9', cursor: 5 },
        ],
        1,
      ),
    );
    const update = plan.find((row) => row.table === 'messages')!;
    expect(update.key).toBe('idx_messages_user_status_seq');
    expect(update.type).toBe('range');
  });

  it('serves the mailbox summary (badge) from the (user_id, status, seq) index', async () => {
    const plan = await explain(mailboxSummaryQuery(store.knex, 'u7', Date.now()));
    expect(plan).toHaveLength(1);
    expect(plan[0]!.key).toBe('idx_messages_user_status_seq');
    expect(plan[0]!.type).toMatch(/^(ref|range)$/);
  });

  it('purges expired rows walking idx_messages_expires_at, in order', async () => {
    const [plan] = (await store.knex.raw('EXPLAIN DELETE FROM messages WHERE expires_at < ? ORDER BY expires_at, id LIMIT ?', [Date.now(), 100])) as [
      Array<Record<string, unknown>>,
    ];
    expect(plan[0]!.key).toBe('idx_messages_expires_at');
    expect(String(plan[0]!.Extra ?? '')).not.toMatch(/filesort/i);
  });

  /** Every row of a plan that reads `messages` walks (user_id, status, seq): a ref or range, never a full scan or a filesort. */
  function expectTopicIndexRange(plan: Array<Record<string, unknown>>, reads: number): void {
    const messageReads = plan.filter((row) => row.table === 'messages');
    expect(messageReads).toHaveLength(reads);
    for (const row of messageReads) {
      expect(row.key).toBe('idx_messages_user_status_seq');
      expect(row.type).toMatch(/^(ref|range)$/);
      expect(String(row.Extra ?? '')).not.toMatch(/filesort|temporary/i);
    }
  }

  it('serves every member of a batched topic read from the (user_id, status, seq) index, its head from the primary key', async () => {
    const plan = await explain(
      topicReadQuery(
        store.knex,
        [
          { key: '#room:1', after: 150, limit: 100 },
          { key: '#room:2', after: 0, limit: 100 },
          { key: '#room:3', after: null, limit: 0 },
        ],
        Date.now(),
      ),
    );
    expectTopicIndexRange(plan, 2);
    // The heads, and each read's start (its trimmed point or position), are primary-key lookups.
    const headReads = plan.filter((row) => row.table === 'mailboxes');
    expect(headReads).toHaveLength(5);
    for (const row of headReads) {
      expect(row.key).toBe('PRIMARY');
      expect(row.type).toMatch(/^(const|eq_ref|ref)$/);
    }
  });

  it('finds a topic’s oldest message and its age cut on the (user_id, status, seq) index', async () => {
    const oldest = await explain(topicOldestQuery(store.knex, '#room:4'));
    expectTopicIndexRange(oldest, 1);
    const ageCut = await explain(topicAgeCutQuery(store.knex, '#room:4', 1_000));
    expectTopicIndexRange(ageCut, 1);
  });

  it('trims a topic walking the (user_id, status, seq) index in order, without a filesort', async () => {
    const trim = topicTrimQuery(store.knex, '#room:5', 120, 50, 1);
    const native = trim.toSQL().toNative();
    expect(native.sql).toMatch(/^UPDATE /);
    // EXPLAIN UPDATE itself: a single-table UPDATE is planned apart from SELECTs, and MariaDB keeps
    // equality-bound columns in its ORDER BY, so the equivalent SELECT would not show a filesort.
    const [plan] = (await store.knex.raw(`EXPLAIN ${native.sql}`, native.bindings as never)) as [Array<Record<string, unknown>>];
    expect(plan).toHaveLength(1);
    expect(plan[0]!.key).toBe('idx_messages_user_status_seq');
    expect(plan[0]!.type).toBe('range');
    expect(String(plan[0]!.Extra ?? '')).not.toMatch(/filesort/i);
  });

  it('pages through the topics (their mailboxes rows) on the primary key', async () => {
    const plan = await explain(topicHeadsQuery(store.knex, '#room:3', 200));
    expect(plan).toHaveLength(1);
    expect(plan[0]!.key).toBe('PRIMARY');
    expect(plan[0]!.type).toBe('range');
    expect(String(plan[0]!.Extra ?? '')).not.toMatch(/filesort/i);
  });

  it('makes a later publish to a mailbox wait for an earlier one to commit: readers only ever see a prefix', async () => {
    const bob = 'late-commit-bob';
    await store.insertMessage({ userId: bob, senderId: 's', body: '"one"' });
    const slow = await store.knex.transaction();
    try {
      // What the store's own publish transaction does, held open before its commit.
      await slow.raw('UPDATE mailboxes SET last_seq = last_seq + 1 WHERE user_id = ?', [bob]);
      await slow('messages').insert({ user_id: bob, sender_id: 's', body: '"two"', status: 'pending', created_at: 1, seq: 2 });
      const later = store.insertMessage({ userId: bob, senderId: 's', body: '"three"' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const seen = await store.readPending(bob, 0, 100);
      expect(seen.messages.map((m) => m.body)).toEqual(['"one"']);
      await slow.commit();
      await later;
      const all = await store.readPending(bob, seen.cursor, 100);
      expect(all.messages.map((m) => [m.seq, m.body])).toEqual([
        [2, '"two"'],
        [3, '"three"'],
      ]);
      // Acking the first answer's cursor never touches what committed after it.
      expect(await store.ackThrough(bob, seen.cursor)).toBe(1);
    } finally {
      if (!slow.isCompleted()) await slow.rollback();
    }
  });
});
