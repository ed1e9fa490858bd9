import type { Knex } from 'knex';
import { beforeAll, describe, expect, it } from 'vitest';
import { startRetention } from '../../src/ops/retention.js';
import type { MessageStore, RetentionStore } from '../../src/store/types.js';
import { backendCases, useBackend, userIds } from '../support/backends.js';

const HOUR = 3_600_000;

describe.each(backendCases('retention'))('retention of acked messages on $name', ({ make, name }) => {
  const backend = useBackend(make);
  let store: MessageStore & RetentionStore & { knex: Knex };
  let now = 1_700_000_000_000;
  const nextUser = userIds('ret');

  beforeAll(async () => {
    store = (await backend.createStore({ now: () => now })) as typeof store;
  });

  /** Stores `n` messages for a user, delivers and acks them at the current clock time. */
  async function ackedMessages(userId: string, n: number): Promise<number[]> {
    const ids: number[] = [];
    for (let i = 0; i < n; i += 1) ids.push((await store.insertMessage({ userId, senderId: 's', body: String(i) })).id);
    const batch = await store.readPending(userId, 0, 1000);
    expect(await store.ackThrough(userId, batch.cursor)).toBe(n);
    return ids;
  }
  const remaining = async (ids: number[]) => (await store.knex('messages').whereIn('id', ids).select('id')).map((row: { id: number | string }) => Number(row.id));

  it('deletes old acked rows in bounded batches and leaves newer acks and unacked rows alone', async () => {
    const [old1, old2, recent] = [nextUser(), nextUser(), nextUser()];
    const oldIds = [...(await ackedMessages(old1, 4)), ...(await ackedMessages(old2, 3))];
    // Unacked rows, however old: one never read, one read (in a response whose cursor never came back).
    const pending = (await store.insertMessage({ userId: old1, senderId: 's', body: '"pending"' })).id;
    const delivered = (await store.insertMessage({ userId: old2, senderId: 's', body: '"read"' })).id;
    await store.readPending(old2, 0, 10);
    now += 2 * HOUR;
    const recentIds = await ackedMessages(recent, 2);
    now += 30 * 60_000;

    const cutoff = now - HOUR;
    expect(await store.purgeAcked(cutoff, 3)).toBe(3);
    expect(await remaining(oldIds)).toHaveLength(4);
    expect(await store.purgeAcked(cutoff, 3)).toBe(3);
    expect(await store.purgeAcked(cutoff, 3)).toBe(1);
    expect(await store.purgeAcked(cutoff, 3)).toBe(0);
    expect(await remaining(oldIds)).toEqual([]);
    expect(await remaining(recentIds)).toEqual(recentIds);
    expect(await remaining([pending, delivered])).toEqual([pending, delivered]);
    // The unacked ones are still delivered as usual.
    expect((await store.readPending(old1, 0, 10)).messages.map((m) => m.id)).toEqual([pending]);
  });

  it('runs batches until one comes back short, within the per-run cap', async () => {
    await store.purgeAcked(now + 1, 1000); // rows left by the other tests
    const user = nextUser();
    const ids = await ackedMessages(user, 7);
    now += 2 * HOUR;
    const purged: number[] = [];
    const retention = startRetention(
      { store, clock: { now: () => now } },
      { maxAckedAgeMs: HOUR, batchSize: 2, intervalMs: 3_600_000, maxBatchesPerRun: 3, pauseBetweenBatchesMs: 0, onPurged: (n) => purged.push(n) },
    );
    try {
      expect(await retention.runOnce()).toBe(6); // 3 batches of 2: the cap, not the end
      expect(await remaining(ids)).toHaveLength(1);
      expect(await retention.runOnce()).toBe(1);
      expect(await retention.runOnce()).toBe(0);
      expect(purged).toEqual([6, 1, 0]);
    } finally {
      await retention.stop();
    }
  });

  it('deletes messages that expired before the cut-off, acked or not, and counts them apart', async () => {
    await store.purgeAcked(now + 1, 1000);
    await store.purgeExpired(now + 1, 1000);
    const user = nextUser();
    const expiredAcked = (await store.insertMessage({ userId: user, senderId: 's', body: '"old, acked"', ttlSeconds: 60 })).id;
    expect(await store.ackThrough(user, 1)).toBe(1);
    const expiredLongAgo = (await store.insertMessage({ userId: user, senderId: 's', body: '"old, never acked"', ttlSeconds: 60 })).id;
    const neverExpires = (await store.insertMessage({ userId: user, senderId: 's', body: '"forever"' })).id;
    now += 2 * HOUR;
    const expiredRecently = (await store.insertMessage({ userId: user, senderId: 's', body: '"recent"', ttlSeconds: 1 })).id;
    now += 10_000;
    const calls: Array<[number, number]> = [];
    const retention = startRetention(
      { store, clock: { now: () => now } },
      { maxAckedAgeMs: HOUR, batchSize: 10, intervalMs: 3_600_000, pauseBetweenBatchesMs: 0, onPurged: (n, expired) => calls.push([n, expired]) },
    );
    try {
      await retention.runOnce();
      // The acked one goes as acked (that purge runs first), the unacked one as expired.
      expect(calls).toEqual([[2, 1]]);
      expect(await remaining([expiredLongAgo, expiredAcked, neverExpires, expiredRecently])).toEqual([neverExpires, expiredRecently]);
    } finally {
      await retention.stop();
    }
  });

  it('trims topics to their last TOPIC_HISTORY_MAX messages and to TOPIC_HISTORY_TTL_S, whichever keeps fewer, even with the acked purge off', async () => {
    const [byCount, byAge] = [`#trim-count-${now}`, `#trim-age-${now}`];
    await store.insertMessages(Array.from({ length: 3 }, (_, i) => ({ userId: byAge, senderId: 's', body: String(i) })));
    now += 2 * HOUR;
    await store.insertMessages(Array.from({ length: 5 }, (_, i) => ({ userId: byCount, senderId: 's', body: String(i) })));
    await store.insertMessage({ userId: byAge, senderId: 's', body: '"recent"' });
    const calls: Array<[number, number, number]> = [];
    const retention = startRetention(
      { store, clock: { now: () => now } },
      {
        maxAckedAgeMs: undefined,
        topicHistory: { max: 3, maxAgeMs: HOUR },
        batchSize: 2,
        intervalMs: 3_600_000,
        pauseBetweenBatchesMs: 0,
        onPurged: (n, expired, trimmed) => calls.push([n, expired, trimmed]),
      },
    );
    try {
      await retention.runOnce();
      const seqs = async (key: string) => (await store.knex('messages').where({ user_id: key, status: 'pending' }).orderBy('seq').pluck('seq')).map(Number);
      // By count: the last 3 of 5. By age: the three older than an hour go, the recent one stays.
      expect(await seqs(byCount)).toEqual([3, 4, 5]);
      expect(await seqs(byAge)).toEqual([4]);
      expect(calls).toEqual([[5, 0, 5]]);
      // Readers below the trimmed point are told; the page continues from the earliest kept.
      expect(await store.readTopic({ key: byCount, after: 1, limit: 10 })).toMatchObject({ position: 5, earliest: 3 });
      expect((await store.readTopic({ key: byAge, after: 0, limit: 10 })).earliest).toBe(4);
    } finally {
      await retention.stop();
    }
  });

  it('rejects a batch size that is not a positive integer', async () => {
    await expect(store.purgeAcked(now, 0)).rejects.toThrow('Expected `limit` to be a positive integer');
  });

  it.runIf(name === 'mysql+redis')('uses the acked_at index, not a table scan', async () => {
    // Enough rows, a third of them acked, that the optimizer's choice is the one production sees.
    const rows = Array.from({ length: 3000 }, (_, i) => ({
      user_id: `bulk-${i % 50}`,
      sender_id: 's',
      body: '1',
      status: i % 3 === 0 ? 'acked' : 'pending',
      acked_at: i % 3 === 0 ? now - HOUR + i : null,
      created_at: now,
    }));
    for (let i = 0; i < rows.length; i += 500) await store.knex('messages').insert(rows.slice(i, i + 500));
    await store.knex.raw('ANALYZE TABLE messages');
    const [plan] = (await store.knex.raw('EXPLAIN DELETE FROM messages WHERE status = ? AND acked_at < ? ORDER BY acked_at, id LIMIT 10', ['acked', now])) as [
      Array<{ key: string | null; type: string; Extra: string | null }>,
    ];
    expect(plan[0]!.key).toBe('idx_messages_acked_at');
    expect(plan[0]!.type).toBe('range');
    expect(plan[0]!.Extra ?? '').not.toMatch(/filesort/i);
  });
});
