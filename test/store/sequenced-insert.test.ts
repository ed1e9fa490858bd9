import { describe, expect, it } from 'vitest';
import type { MessageDraft } from '../../src/core/model.js';
import { createSequencedInsert, type SequencedInsertSettings } from '../../src/store/knex/sequenced-insert.js';

// The group-commit script's statements, built and read without a database: what each statement
// binds and how the stored rows are read back from the drivers' answers.

const NOW = 1_700_000_000_000;
const settings = (overrides: Partial<SequencedInsertSettings> = {}): SequencedInsertSettings => ({
  dialect: 'mysql',
  seqFloor: 0,
  consecutiveIds: true,
  clock: { now: () => NOW },
  ...overrides,
});
const draft = (userId: string, body: string, extra: Partial<MessageDraft> = {}): MessageDraft => ({ userId, senderId: 'alice', body, ...extra });
const drafts = [draft('zoe', '"z1"'), draft('bob', '"b1"', { clientMessageId: 'm-1', ttlSeconds: 60 }), draft('zoe', '"z2"', { receipt: true }), draft('zoe', '"z3"')];

describe('the sequenced insert', () => {
  it('reserves each mailbox’s sequences in user id order, so two transactions never lock crosswise', () => {
    const [reserve] = createSequencedInsert(settings({ seqFloor: 1_000 }))(drafts).statements;
    expect(reserve!.sql).toMatch(/^INSERT INTO mailboxes \(user_id, last_seq\) VALUES \(\?, \?\), \(\?, \?\) ON DUPLICATE KEY UPDATE last_seq = last_seq \+ VALUES\(last_seq\) - \?$/);
    // A new mailbox starts at the floor plus its count; an existing one adds its count.
    expect(reserve!.bindings).toEqual(['bob', 1_001, 'zoe', 1_003, 1_000]);
  });

  it('speaks SQLite’s upsert on SQLite', () => {
    const [reserve] = createSequencedInsert(settings({ dialect: 'sqlite' }))(drafts).statements;
    expect(reserve!.sql).toContain('ON CONFLICT (user_id) DO UPDATE SET last_seq = last_seq + excluded.last_seq - ?');
  });

  it('gives the k-th of n drafts to one mailbox the head minus (n - 1 - k), read by the INSERT itself', () => {
    const { statements } = createSequencedInsert(settings())(drafts);
    expect(statements).toHaveLength(3);
    const insert = statements[1]!;
    expect(insert.sql.match(/\(SELECT last_seq FROM mailboxes WHERE user_id = \?\) - \?/g)).toHaveLength(4);
    // 9 bindings a row: user, sender, client id, body, created, expires, receipt, user (again), offset.
    const rows = Array.from({ length: 4 }, (_, index) => insert.bindings.slice(index * 9, index * 9 + 9));
    expect(rows.map((row) => [row[0], row[8]])).toEqual([
      ['zoe', 2],
      ['bob', 0],
      ['zoe', 1],
      ['zoe', 0],
    ]);
    expect(rows[1]).toEqual(['bob', 'alice', 'm-1', '"b1"', NOW, NOW + 60_000, 0, 'bob', 0]);
    expect(rows[2]!.slice(5, 7)).toEqual([null, 1]);
  });

  it('inserts row by row when auto-increment ids may interleave (innodb_autoinc_lock_mode 2)', () => {
    const { statements } = createSequencedInsert(settings({ consecutiveIds: false }))(drafts);
    expect(statements).toHaveLength(1 + drafts.length + 1);
    for (const insert of statements.slice(1, -1)) expect(insert.sql.match(/\(SELECT last_seq/g)).toHaveLength(1);
  });

  it('reads the heads of the mailboxes it advanced, once each', () => {
    const heads = createSequencedInsert(settings())(drafts).statements.at(-1)!;
    expect(heads).toEqual({ sql: 'SELECT user_id, last_seq FROM mailboxes WHERE user_id IN (?, ?)', bindings: ['zoe', 'bob'] });
  });

  it('reads the stored rows back: MySQL reports the first id of a multi-row INSERT', () => {
    const plan = createSequencedInsert(settings())(drafts);
    const stored = plan.stored([{}, [{ insertId: 41 }], [[{ user_id: 'zoe', last_seq: '7' }, { user_id: 'bob', last_seq: 3 }]]]);
    expect(stored.map((message) => [message.id, message.userId, message.seq])).toEqual([
      [41, 'zoe', 5],
      [42, 'bob', 3],
      [43, 'zoe', 6],
      [44, 'zoe', 7],
    ]);
    expect(stored[1]).toMatchObject({ clientMessageId: 'm-1', createdAt: NOW, expiresAt: NOW + 60_000, senderId: 'alice', body: '"b1"' });
    expect(stored[0]).toMatchObject({ clientMessageId: null, expiresAt: null });
  });

  it('reads the stored rows back: SQLite reports the last id', () => {
    const plan = createSequencedInsert(settings({ dialect: 'sqlite' }))(drafts);
    const stored = plan.stored([{}, { lastInsertRowid: 44 }, [{ user_id: 'zoe', last_seq: 3 }, { user_id: 'bob', last_seq: 1 }]]);
    expect(stored.map((message) => message.id)).toEqual([41, 42, 43, 44]);
  });

  it('takes each row’s id from its own INSERT when rows are inserted one by one', () => {
    const plan = createSequencedInsert(settings({ consecutiveIds: false }))(drafts);
    const stored = plan.stored([{}, [{ insertId: 10 }], [{ insertId: 12 }], [{ insertId: 15 }], [{ insertId: 16 }], [[{ user_id: 'zoe', last_seq: 3 }, { user_id: 'bob', last_seq: 1 }]]]);
    expect(stored.map((message) => [message.id, message.seq])).toEqual([
      [10, 1],
      [12, 1],
      [15, 2],
      [16, 3],
    ]);
  });
});
