import { beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../../src/bus/types.js';
import { createEngine } from '../../src/core/engine.js';
import type { MessageStore } from '../../src/store/types.js';
import { backendCases, uniqueName, useBackend, userIds } from '../support/backends.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * The engine answers from what it knows instead of reading the store where that gives the same
 * answer: the rows its own publishes just committed, and mailbox heads learned from wakes. These
 * tests count the store reads, and try the ways that knowledge can be wrong.
 */
describe.each(backendCases('engine mailbox heads'))('poll engine answers without store reads on $name', ({ name, make }) => {
  const backend = useBackend(make);
  let store: MessageStore;
  let reads = 0;
  let counted: MessageStore;
  let busHere: Bus;
  let busElsewhere: Bus;
  const nextUser = userIds('heads');

  beforeAll(async () => {
    store = await backend.createStore();
    counted = {
      ...store,
      insertMessage: (draft) => store.insertMessage(draft),
      insertMessages: (drafts) => store.insertMessages(drafts),
      readPending: (userId, cursor, limit) => {
        reads += 1;
        return store.readPending(userId, cursor, limit);
      },
    };
    // Two processes: same store, each its own bus connection on one prefix (in-process: one bus).
    const prefix = `${uniqueName('heads')}:`;
    busHere = await backend.createBus(prefix);
    busElsewhere = name === 'embedded' ? busHere : await backend.createBus(prefix);
  });

  it('answers a poll woken by a publish of this process with the committed rows, without a store read', async () => {
    const engine = createEngine({ store: counted, bus: busHere });
    const bob = nextUser();
    const held = engine.holdPoll(bob, { cursor: 0, waitMs: 5_000, limit: 10 });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    const readsBefore = reads;
    await engine.publishMany([
      { userId: bob, senderId: 'alice', body: '"one"' },
      { userId: bob, senderId: 'alice', body: '"two"' },
    ]);
    const result = await held;
    expect(result.messages.map((m) => [m.seq, m.body])).toEqual([
      [1, '"one"'],
      [2, '"two"'],
    ]);
    expect(result.cursor).toBe(2);
    expect(reads).toBe(readsBefore);
  });

  it('holds a poll at the known head without reading, and reads when another process commits', async () => {
    const here = createEngine({ store: counted, bus: busHere });
    const elsewhere = createEngine({ store, bus: busElsewhere });
    const bob = nextUser();
    await here.publish({ userId: bob, senderId: 'alice', body: '"first"' });
    const first = await here.holdPoll(bob, { cursor: 0, waitMs: 0, limit: 10 });
    expect(first.cursor).toBe(1);

    const readsBefore = reads;
    const held = here.holdPoll(bob, { cursor: first.cursor, waitMs: 5_000, limit: 10 });
    await waitFor(() => here.heldPollsOf(bob) === 1);
    await sleep(50);
    expect(reads).toBe(readsBefore);

    await elsewhere.publish({ userId: bob, senderId: 'carol', body: '"from elsewhere"' });
    const second = await held;
    expect(second.messages.map((m) => m.body)).toEqual(['"from elsewhere"']);
    expect(reads).toBe(readsBefore + 1);
  });

  it('reads the store when what this process committed does not continue the cursor', async () => {
    const engine = createEngine({ store: counted, bus: busHere });
    const bob = nextUser();
    await engine.publish({ userId: bob, senderId: 'alice', body: '"1"' });
    const first = await engine.holdPoll(bob, { cursor: 0, waitMs: 0, limit: 10 });
    const held = engine.holdPoll(bob, { cursor: first.cursor, waitMs: 5_000, limit: 10 });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    // Committed by someone whose wake never came (seq 2), then one of ours (seq 3).
    await store.insertMessage({ userId: bob, senderId: 'mallory', body: '"2, unannounced"' });
    await engine.publish({ userId: bob, senderId: 'alice', body: '"3"' });
    const result = await held;
    expect(result.messages.map((m) => [m.seq, m.body])).toEqual([
      [2, '"2, unannounced"'],
      [3, '"3"'],
    ]);
  });

  it('trusts a head only for headTrustMs: a commit whose wake was lost is found after that', async () => {
    const engine = createEngine({ store: counted, bus: busHere }, { headTrustMs: 300 });
    const bob = nextUser();
    await engine.publish({ userId: bob, senderId: 'alice', body: '"1"' });
    const first = await engine.holdPoll(bob, { cursor: 0, waitMs: 0, limit: 10 });
    await store.insertMessage({ userId: bob, senderId: 'mallory', body: '"lost wake"' });
    const readsBefore = reads;
    expect((await engine.holdPoll(bob, { cursor: first.cursor, waitMs: 0, limit: 10 })).messages).toEqual([]);
    expect(reads).toBe(readsBefore);
    await sleep(350);
    const later = await engine.holdPoll(bob, { cursor: first.cursor, waitMs: 0, limit: 10 });
    expect(later.messages.map((m) => m.body)).toEqual(['"lost wake"']);
  });

  it('forgets a head when a wake names the user without one (an idempotent repeat elsewhere)', async () => {
    const engine = createEngine({ store: counted, bus: busHere });
    const bob = nextUser();
    await engine.publish({ userId: bob, senderId: 'alice', body: '"1"' });
    const first = await engine.holdPoll(bob, { cursor: 0, waitMs: 0, limit: 10 });
    await store.insertMessage({ userId: bob, senderId: 'mallory', body: '"2"' });
    await busElsewhere.wake([bob]);
    await sleep(100);
    const next = await engine.holdPoll(bob, { cursor: first.cursor, waitMs: 0, limit: 10 });
    expect(next.messages.map((m) => m.body)).toEqual(['"2"']);
  });

  it('never hands a held poll a committed row that expired on the way', async () => {
    let now = Date.now();
    const clock = { now: () => now };
    const clockedStore = await backend.createStore(clock);
    // A commit so slow that the message's ttl ran out before the publish returned.
    const slowStore: MessageStore = {
      ...clockedStore,
      readPending: (userId, cursor, limit) => clockedStore.readPending(userId, cursor, limit),
      insertMessage: async (draft) => {
        const result = await clockedStore.insertMessage(draft);
        now += 120_000;
        return result;
      },
    };
    const engine = createEngine({ store: slowStore, bus: busHere, clock });
    const bob = nextUser();
    const held = engine.holdPoll(bob, { cursor: 0, waitMs: 400, limit: 10 });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    const { message } = await engine.publish({ userId: bob, senderId: 'alice', body: '"stale"', ttlSeconds: 60 });
    expect(message?.expiresAt).not.toBeNull();
    const result = await Promise.race([held, sleep(1_500).then(() => 'still held' as const)]);
    expect(result === 'still held' || result.messages.every((m) => m.body !== '"stale"')).toBe(true);
  });

  it('never answers a full page from the head: a limited answer may stop short of it', async () => {
    const engine = createEngine({ store: counted, bus: busHere });
    const bob = nextUser();
    await engine.publishMany(Array.from({ length: 5 }, (_, i) => ({ userId: bob, senderId: 'alice', body: String(i) })));
    let cursor = 0;
    const bodies: string[] = [];
    for (let page = 0; page < 4; page += 1) {
      const batch = await engine.holdPoll(bob, { cursor, waitMs: 0, limit: 2 });
      bodies.push(...batch.messages.map((m) => m.body));
      cursor = batch.cursor;
    }
    expect(bodies).toEqual(['0', '1', '2', '3', '4']);
  });
});
