import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MessageDraft, StoredMessage } from '../../src/core/model.js';
import type { MessageStore } from '../../src/store/types.js';
import { backendCases, useBackend } from '../support/backends.js';

/**
 * The delivery guarantee as a property of the store contract: over random interleavings of
 * publishes (single, batched, concurrent), polls with small limits, lost responses, the same
 * cursor read twice at once (one answer kept), and acks, a cursor acks only messages the client
 * received, and once the client drains its mailbox it has received every stored message, each
 * sender's in publish order.
 */
type Step =
  | { kind: 'publish'; to: number; from: number; size: number }
  | { kind: 'concurrentPublishes'; to: number; count: number }
  | { kind: 'poll'; user: number; limit: number; lost: boolean; doubled: boolean; keepSecond: boolean }
  | { kind: 'ack'; user: number };

const USERS = 2;
const SENDERS = 3;
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('publish' as const), to: fc.nat(USERS - 1), from: fc.nat(SENDERS - 1), size: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ kind: fc.constant('concurrentPublishes' as const), to: fc.nat(USERS - 1), count: fc.integer({ min: 2, max: SENDERS }) }),
  fc.record({
    kind: fc.constant('poll' as const),
    user: fc.nat(USERS - 1),
    limit: fc.integer({ min: 1, max: 3 }),
    lost: fc.boolean(),
    doubled: fc.boolean(),
    keepSecond: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('ack' as const), user: fc.nat(USERS - 1) }),
);

describe.each(backendCases('store delivery property'))('delivery guarantee of the store on $name', ({ name, make }) => {
  const backend = useBackend(make);
  let store: MessageStore & { knex: import('knex').Knex };
  let run = 0;

  beforeAll(async () => {
    store = await backend.createStore();
  });

  async function checkRun(steps: Step[]): Promise<void> {
    run += 1;
    const users = Array.from({ length: USERS }, (_, u) => `r${run}-u${u}`);
    const nextN = new Map<string, number>();
    const published = new Map<number, { user: string; sender: string; n: number }>();
    const cursors = users.map(() => 0);
    const received = users.map(() => new Map<number, StoredMessage>());

    function draft(to: number, from: number): MessageDraft {
      const sender = `r${run}-s${from}`;
      const key = `${sender}>${to}`;
      const n = nextN.get(key) ?? 0;
      nextN.set(key, n + 1);
      return { userId: users[to]!, senderId: sender, clientMessageId: `${to}-${n}`, body: JSON.stringify({ n }) };
    }
    function remember(drafts: MessageDraft[], ids: number[]): void {
      drafts.forEach((d, i) => published.set(ids[i]!, { user: d.userId, sender: d.senderId, n: (JSON.parse(d.body) as { n: number }).n }));
    }

    async function poll(user: number, limit: number, lost: boolean, doubled: boolean, keepSecond: boolean): Promise<void> {
      const userId = users[user]!;
      const cursor = cursors[user]!;
      await store.ackThrough(userId, cursor);
      const answers = await Promise.all(Array.from({ length: doubled ? 2 : 1 }, () => store.readPending(userId, cursor, limit)));
      for (const answer of answers) {
        // Every answer is the next part of the mailbox after the cursor, in order.
        expect(answer.messages.length).toBeLessThanOrEqual(limit);
        answer.messages.forEach((m, i) => expect(m.seq).toBeGreaterThan(i === 0 ? 0 : answer.messages[i - 1]!.seq));
        if (answer.messages.length > 0) expect(answer.cursor).toBe(answer.messages.at(-1)!.seq);
      }
      if (lost) return;
      const kept = answers[doubled && keepSecond ? 1 : 0]!;
      for (const m of kept.messages) received[user]!.set(m.id, m);
      cursors[user] = kept.cursor;
    }

    async function assertAckedWereReceived(): Promise<void> {
      const acked = (await store.knex('messages').whereIn('user_id', users).andWhere({ status: 'acked' }).select('id', 'user_id')) as Array<{
        id: number | string;
        user_id: string;
      }>;
      for (const row of acked) {
        const user = users.indexOf(row.user_id);
        expect(received[user]!.has(Number(row.id)), `message ${row.id} of ${row.user_id} was acked but never received`).toBe(true);
      }
    }

    for (const s of steps) {
      if (s.kind === 'publish') {
        const drafts = Array.from({ length: s.size }, () => draft(s.to, s.from));
        const results = s.size === 1 ? [await store.insertMessage(drafts[0]!)] : await store.insertMessages(drafts);
        remember(
          drafts,
          results.map((r) => r.id),
        );
      } else if (s.kind === 'concurrentPublishes') {
        // Different senders at once (one sender's publishes are sequential, or they have no order):
        // they land in one group commit, or several.
        const drafts = Array.from({ length: s.count }, (_, i) => draft(s.to, i % SENDERS));
        const results = await Promise.all(drafts.map((d) => store.insertMessage(d)));
        remember(
          drafts,
          results.map((r) => r.id),
        );
      } else if (s.kind === 'poll') {
        await poll(s.user, s.limit, s.lost, s.doubled, s.keepSecond);
      } else {
        await store.ackThrough(users[s.user]!, cursors[s.user]!);
      }
      await assertAckedWereReceived();
    }

    // Drain: a client that stops losing responses ends with every published message, in order.
    for (let user = 0; user < USERS; user += 1) {
      for (let guard = 0; guard < 200; guard += 1) {
        const before = cursors[user];
        await poll(user, 3, false, false, false);
        if (cursors[user] === before) break;
      }
    }
    await assertAckedWereReceived();
    for (const [id, message] of published) {
      const user = users.indexOf(message.user);
      expect(received[user]!.has(id), `published ${id} (${message.sender} #${message.n}) never received`).toBe(true);
    }
    for (let user = 0; user < USERS; user += 1) {
      const bySender = new Map<string, number[]>();
      const inOrder = [...received[user]!.values()].sort((a, b) => a.seq - b.seq);
      for (const m of inOrder) bySender.set(m.senderId, [...(bySender.get(m.senderId) ?? []), (JSON.parse(m.body) as { n: number }).n]);
      for (const ns of bySender.values()) expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
  }

  it(
    'acks only what was received and delivers everything, in per-sender order',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => checkRun(steps)),
        { numRuns: name === 'embedded' ? 150 : 40 },
      );
    },
    60_000,
  );
});
