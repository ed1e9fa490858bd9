import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { topicKey, type InsertResult, type MessageDraft, type StoredMessage, type TopicPage } from '../../src/core/model.js';
import { IdempotencyConflictError } from '../../src/errors.js';
import type { KnexStore } from '../../src/store/knex/index.js';
import type { MessageStore } from '../../src/store/types.js';
import { backendCases, useBackend } from '../support/backends.js';
import { BROKEN_TOPIC_READS, checkTopicGuarantee, withBrokenTopicReads, type TopicAck, type TopicReaderHistory } from '../support/topic-guarantee.js';

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

/**
 * The topic side, as a property against a model: over random interleavings of topic publishes
 * (single, batched across topics, concurrent, with repeated ids and conflicting ones), reads at
 * arbitrary positions and limits (doubled too), and trims (by count and by age, whole or stopped
 * at a small limit), every read is exactly the model's page: the messages after the position in
 * `seq` order, at most `limit`, the position moved to the last of them, and a reset (with the
 * earliest retained `seq`) exactly when the position lies below the trimmed point or above the
 * head. Each publish takes the next `seq` of its topic; a repeat answers the first one's id and
 * seq; a conflict stores nothing of its batch; a trim deletes nothing above its trimmed point.
 * Readers that follow their positions and drain at the end pass the guarantee checker.
 */
type TopicStep =
  | { kind: 'publish'; sender: number; single: boolean; items: Array<{ topic: number; repeat: boolean; pick: number }> }
  | { kind: 'concurrentPublishes'; topics: number[] }
  | { kind: 'conflict'; sender: number; pick: number; otherTopic: boolean; withNew: boolean }
  | { kind: 'read'; reader: number; topic: number; limit: number; at: 'own' | 'anywhere' | 'now'; anywhere: number; doubled: boolean }
  | { kind: 'trim'; historyMax: number; ageSteps: number | null; limit: number; whole: boolean };

const TOPICS = 2;
const TOPIC_SENDERS = 3;
const TOPIC_READERS = 2;
/** The model clock moves this far per step, so the age of a trim counts steps. */
const STEP_MS = 1_000;

const topicStep: fc.Arbitrary<TopicStep> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('publish' as const),
      sender: fc.nat(TOPIC_SENDERS - 1),
      single: fc.boolean(),
      items: fc.array(fc.record({ topic: fc.nat(TOPICS - 1), repeat: fc.boolean(), pick: fc.nat(50) }), { minLength: 1, maxLength: 4 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('concurrentPublishes' as const), topics: fc.array(fc.nat(TOPICS - 1), { minLength: 2, maxLength: TOPIC_SENDERS }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('conflict' as const), sender: fc.nat(TOPIC_SENDERS - 1), pick: fc.nat(50), otherTopic: fc.boolean(), withNew: fc.boolean() }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      reader: fc.nat(TOPIC_READERS - 1),
      topic: fc.nat(TOPICS - 1),
      limit: fc.integer({ min: 1, max: 4 }),
      // Half of the reads follow the reader's own position; the rest ask anywhere (above the head too) or from now.
      at: fc.constantFrom('own' as const, 'own' as const, 'anywhere' as const, 'now' as const),
      anywhere: fc.nat(60),
      doubled: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('trim' as const),
      historyMax: fc.integer({ min: 1, max: 6 }),
      ageSteps: fc.option(fc.integer({ min: 0, max: 12 }), { nil: null }),
      limit: fc.integer({ min: 1, max: 6 }),
      whole: fc.boolean(),
    }),
  },
);

interface ModelTopic {
  name: string;
  key: string;
  lastSeq: number;
  trimmed: number;
  /** Every message the topic stored, in `seq` order (trimmed ones too: no read reaches them). */
  messages: Array<{ id: number; seq: number; senderId: string; clientMessageId: string; body: string; createdAt: number }>;
}

/** What a read answers, as compared with the model (a missing `earliest` and an undefined one are alike). */
function pageView(page: TopicPage): unknown {
  return {
    messages: page.messages.map((m) => ({ id: m.id, seq: m.seq, userId: m.userId, senderId: m.senderId, clientMessageId: m.clientMessageId, body: m.body, expiresAt: m.expiresAt })),
    position: page.position,
    earliest: page.earliest,
  };
}

/** The model's page: `topicPage`'s rule, written out again over the model's messages. */
function expectedPage(topic: ModelTopic, after: number | null, limit: number): unknown {
  if (after === null) return { messages: [], position: topic.lastSeq, earliest: undefined };
  const reset = after < topic.trimmed || after > topic.lastSeq;
  const from = reset ? topic.trimmed : after;
  const messages = topic.messages.filter((m) => m.seq > from).slice(0, limit);
  return {
    messages: messages.map((m) => ({ id: m.id, seq: m.seq, userId: topic.key, senderId: m.senderId, clientMessageId: m.clientMessageId, body: m.body, expiresAt: null })),
    position: messages.length > 0 ? messages[messages.length - 1]!.seq : from,
    earliest: reset ? topic.trimmed + 1 : undefined,
  };
}

describe.each(backendCases('store topic property'))('topic guarantee of the store on $name', ({ make }) => {
  const backend = useBackend(make);
  let now = Date.UTC(2030, 0, 1);
  let store: KnexStore;
  let run = 0;

  beforeAll(async () => {
    store = await backend.createStore({ now: () => now });
  });

  async function checkTopicRun(target: KnexStore, steps: TopicStep[]): Promise<void> {
    run += 1;
    const prefix = `p${String(run).padStart(5, '0')}`;
    // Only this run's topics exist, so a trim walks these and nothing else.
    await target.knex('messages').where('user_id', 'like', '#%').del();
    await target.knex('mailboxes').where('user_id', 'like', '#%').del();
    const topics: ModelTopic[] = Array.from({ length: TOPICS }, (_, t) => ({ name: `${prefix}-t${t}`, key: topicKey(`${prefix}-t${t}`), lastSeq: 0, trimmed: 0, messages: [] }));
    const senders = Array.from({ length: TOPIC_SENDERS }, (_, s) => `${prefix}-s${s}`);
    /** Stored publishes by idempotency key (keys are unique over all senders). */
    const stored = new Map<string, { topic: number; id: number; seq: number }>();
    const keysOf = senders.map((): string[] => []);
    let nextKey = 0;
    const acks: TopicAck[] = [];
    const attempted = new Map<string, { topic: string; sender: string }>();
    let trimmedAny = false;
    const positions = Array.from({ length: TOPIC_READERS }, () => topics.map(() => 0));
    const histories = positions.map((_, reader) => topics.map((topic): TopicReaderHistory => ({ reader: `reader ${reader}`, topic: topic.name, reads: [] })));

    /**
     * A sender's idempotency keys whose messages are still in their topic's history. A trimmed
     * message's key is forgotten with its row (see the known bug below), so repeats and conflicts
     * pick only retained ones.
     */
    function retainedKeys(sender: number): string[] {
      return keysOf[sender]!.filter((key) => {
        const message = stored.get(key)!;
        return message.seq > topics[message.topic]!.trimmed;
      });
    }
    function newDraft(sender: number, topic: number): MessageDraft {
      const clientMessageId = `k${nextKey++}`;
      attempted.set(clientMessageId, { topic: topics[topic]!.name, sender: senders[sender]! });
      return { userId: topics[topic]!.key, senderId: senders[sender]!, clientMessageId, body: JSON.stringify({ k: clientMessageId }) };
    }
    function record(sender: number, topic: number, message: StoredMessage): void {
      const model = topics[topic]!;
      expect(message.seq, `a new message of ${model.name} takes the next seq`).toBe(model.lastSeq + 1);
      expect(message.userId).toBe(model.key);
      model.lastSeq = message.seq;
      model.messages.push({ id: message.id, seq: message.seq, senderId: message.senderId, clientMessageId: message.clientMessageId!, body: message.body, createdAt: now });
      stored.set(message.clientMessageId!, { topic, id: message.id, seq: message.seq });
      keysOf[sender]!.push(message.clientMessageId!);
      acks.push({ clientId: message.clientMessageId!, topic: model.name, sender: senders[sender]!, n: acks.length, id: message.id, seq: message.seq });
    }

    /** Every topic's head is the model's: nothing was stored that the model did not store. */
    async function expectHeads(): Promise<void> {
      for (const topic of topics) expect((await target.readTopic({ key: topic.key, after: null, limit: 1 })).position, `head of ${topic.name}`).toBe(topic.lastSeq);
    }

    async function read(reader: number, t: number, at: 'own' | 'anywhere' | 'now', anywhere: number, limit: number, doubled: boolean): Promise<TopicPage> {
      const topic = topics[t]!;
      const after = at === 'own' ? positions[reader]![t]! : at === 'now' ? null : anywhere % (topic.lastSeq + 4);
      const expected = expectedPage(topic, after, limit);
      const pages = await Promise.all(Array.from({ length: doubled ? 2 : 1 }, () => target.readTopic({ key: topic.key, after, limit })));
      for (const page of pages) expect(pageView(page), `read of ${topic.name} after ${after} limit ${limit} (trimmed ${topic.trimmed}, head ${topic.lastSeq})`).toEqual(expected);
      const page = pages[0]!;
      if (at === 'own') {
        positions[reader]![t] = page.position;
        histories[reader]![t]!.reads.push({
          kept: true,
          sent: after,
          messages: page.messages.map((m) => ({ id: m.id, seq: m.seq, clientId: m.clientMessageId ?? undefined, from: m.senderId })),
          position: page.position,
          earliest: page.earliest,
        });
      }
      return page;
    }

    for (const s of steps) {
      now += STEP_MS;
      if (s.kind === 'publish') {
        const plan: Array<{ draft: MessageDraft; topic: number; repeatOf?: string }> = [];
        for (const item of s.items) {
          const fresh = plan.filter((entry) => entry.repeatOf === undefined).map((entry) => entry.draft.clientMessageId!);
          const pool = [...retainedKeys(s.sender), ...fresh];
          if (item.repeat && pool.length > 0) {
            // The same message again (same topic, same body): an earlier publish's, or one earlier in this batch.
            const clientMessageId = pool[item.pick % pool.length]!;
            const topic = stored.get(clientMessageId)?.topic ?? plan.find((entry) => entry.draft.clientMessageId === clientMessageId)!.topic;
            plan.push({ draft: { userId: topics[topic]!.key, senderId: senders[s.sender]!, clientMessageId, body: JSON.stringify({ k: clientMessageId }) }, topic, repeatOf: clientMessageId });
          } else {
            plan.push({ draft: newDraft(s.sender, item.topic), topic: item.topic });
          }
        }
        const drafts = plan.map((entry) => entry.draft);
        const results = s.single && drafts.length === 1 ? [await target.insertMessage(drafts[0]!)] : await target.insertMessages(drafts);
        expect(results).toHaveLength(drafts.length);
        plan.forEach((entry, i) => {
          const result = results[i]!;
          if (entry.repeatOf === undefined) {
            expect(result.duplicate, `${entry.draft.clientMessageId} is new`).toBe(false);
            if (!result.duplicate) record(s.sender, entry.topic, result.message);
            return;
          }
          const original = stored.get(entry.repeatOf)!;
          const answered = { duplicate: result.duplicate, id: result.id, seq: result.duplicate ? result.seq : result.message.seq };
          expect(answered, `repeat of ${entry.repeatOf}`).toEqual({ duplicate: true, id: original.id, seq: original.seq });
        });
      } else if (s.kind === 'concurrentPublishes') {
        // Different senders at once: one group commit or several, in an order nobody chose.
        const drafts = s.topics.map((topic, sender) => ({ draft: newDraft(sender, topic), sender, topic }));
        const results = await Promise.all(drafts.map(({ draft }) => target.insertMessage(draft)));
        const storedNow = results.map((result, i) => {
          expect(result.duplicate).toBe(false);
          return { ...drafts[i]!, message: (result as Extract<InsertResult, { duplicate: false }>).message };
        });
        for (const entry of storedNow.sort((a, b) => a.message.seq - b.message.seq)) record(entry.sender, entry.topic, entry.message);
      } else if (s.kind === 'conflict') {
        const own = retainedKeys(s.sender);
        if (own.length === 0) continue;
        const clientMessageId = own[s.pick % own.length]!;
        const original = stored.get(clientMessageId)!;
        const topic = s.otherTopic ? (original.topic + 1) % TOPICS : original.topic;
        const conflicting: MessageDraft = {
          userId: topics[topic]!.key,
          senderId: senders[s.sender]!,
          clientMessageId,
          body: JSON.stringify(s.otherTopic ? { k: clientMessageId } : { k: clientMessageId, changed: true }),
        };
        // A batch is all or nothing: the new message before the conflicting one is not stored either.
        const drafts = s.withNew ? [newDraft(s.sender, original.topic), conflicting] : [conflicting];
        await expect(drafts.length === 1 ? target.insertMessage(conflicting) : target.insertMessages(drafts)).rejects.toBeInstanceOf(IdempotencyConflictError);
        await expectHeads();
      } else if (s.kind === 'read') {
        await read(s.reader, s.topic, s.at, s.anywhere, s.limit, s.doubled);
      } else {
        const createdBefore = s.ageSteps === null ? 0 : now - s.ageSteps * STEP_MS;
        const cuts = topics.map((topic) =>
          Math.max(topic.trimmed, topic.lastSeq - s.historyMax, ...topic.messages.filter((m) => m.createdAt < createdBefore).map((m) => m.seq)),
        );
        if (s.whole) {
          // Until two calls in a row delete nothing: a call may start after where the last one stopped.
          for (let calls = 0, idle = 0; idle < 2; calls++) {
            expect(calls, 'trimTopics keeps deleting').toBeLessThan(500);
            idle = (await target.trimTopics(s.historyMax, createdBefore, s.limit)) === 0 ? idle + 1 : 0;
          }
        } else {
          await target.trimTopics(s.historyMax, createdBefore, s.limit);
        }
        const heads = (await target.knex('mailboxes').whereIn('user_id', topics.map((topic) => topic.key)).select('user_id', 'trimmed_seq')) as Array<{ user_id: string; trimmed_seq: number | string }>;
        for (const [t, topic] of topics.entries()) {
          const trimmed = Number(heads.find((row) => row.user_id === topic.key)?.trimmed_seq ?? 0);
          // A call stopped by its limit may not have reached a topic yet; one that did raised it to the cut.
          if (s.whole) expect(trimmed, `${topic.name} trimmed point`).toBe(cuts[t]);
          else expect([topic.trimmed, cuts[t]], `${topic.name} trimmed point`).toContain(trimmed);
          if (trimmed > topic.trimmed) trimmedAny = true;
          topic.trimmed = trimmed;
          // Nothing above the trimmed point ever leaves the history; a whole trim takes out everything
          // at or below it (kept as acked rows for their idempotency keys, never read again).
          const left = ((await target.knex('messages').where({ user_id: topic.key, status: 'pending' }).orderBy('seq').pluck('seq')) as Array<number | string>).map(Number);
          expect(
            left.filter((seq) => seq > trimmed),
            `${topic.name} retained history`,
          ).toEqual(topic.messages.filter((m) => m.seq > trimmed).map((m) => m.seq));
          if (s.whole) expect(left.filter((seq) => seq <= trimmed)).toEqual([]);
        }
      }
    }

    // Drain: readers that follow their positions reach each topic's head.
    for (let reader = 0; reader < TOPIC_READERS; reader++) {
      for (let t = 0; t < TOPICS; t++) {
        for (let guard = 0; positions[reader]![t] !== topics[t]!.lastSeq; guard++) {
          expect(guard, `reader ${reader} does not reach the head of ${topics[t]!.name}`).toBeLessThan(200);
          await read(reader, t, 'own', 0, 3, false);
        }
      }
    }
    await expectHeads();
    const verdict = checkTopicGuarantee({ acks, attempted, readers: histories.flat(), trimmed: trimmedAny });
    expect(verdict.violations).toEqual([]);
  }

  const steps = fc.array(topicStep, { minLength: 1, maxLength: 40 });

  it(
    'answers every topic read as the model does: prefixes in seq order, exact positions, resets exactly when outside the history',
    async () => {
      await fc.assert(
        fc.asyncProperty(steps, (s) => checkTopicRun(store, s)),
        { numRuns: 150 },
      );
    },
    60_000,
  );

  // Known bug, pinned here rather than fixed: a topic message's idempotency key goes with its row,
  // so a publisher that retries after the trim (a lost response, a restart) stores the message a
  // second time under a new id and seq, answered `duplicate: false`; readers get it twice and
  // cannot drop the repeat by id. On a busy topic the history (TOPIC_HISTORY_MAX messages) may be
  // seconds long. Drop `.fails` with the fix.
  it('answers a repeated topic publish as the duplicate it is, also after its message was trimmed', async () => {
    const key = topicKey(`trimmed-repeat-${run}`);
    const draft: MessageDraft = { userId: key, senderId: 'retrying-sender', clientMessageId: 'sent-once', body: '"hello"' };
    const first = await store.insertMessage(draft);
    await store.insertMessage({ ...draft, clientMessageId: 'sent-later', body: '"later"' });
    for (let idle = 0; idle < 2; ) idle = (await store.trimTopics(1, 0, 100)) === 0 ? idle + 1 : 0;
    const retry = await store.insertMessage(draft);
    expect({ duplicate: retry.duplicate, id: retry.id }).toEqual({ duplicate: true, id: first.id });
  });

  it.each(BROKEN_TOPIC_READS)('fails for a store whose topic reads are broken (%s)', async (broken) => {
    const result = await fc.check(
      fc.asyncProperty(steps, (s) => checkTopicRun(withBrokenTopicReads(store, broken), s)),
      { numRuns: 300, endOnFailure: true },
    );
    expect(result.failed, `the property passed ${result.numRuns} runs on a store whose topic reads are "${broken}"`).toBe(true);
  });
});
