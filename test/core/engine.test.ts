import { beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBus } from '../../src/bus/memory-bus.js';
import type { Bus } from '../../src/bus/types.js';
import { createEngine, type Engine } from '../../src/core/engine.js';
import type { MessageStore } from '../../src/store/types.js';
import { backendCases, useBackend, userIds } from '../support/backends.js';
import { createFakeStore } from '../support/fake-store.js';
import { sleep, waitFor } from '../support/wait.js';



describe.each(backendCases('poll engine'))('poll engine on $name', ({ make }) => {
  const backend = useBackend(make);
  let store: MessageStore;
  let bus: Bus;
  let engine: Engine;
  const nextUser = userIds('engine');

  beforeAll(async () => {
    store = await backend.createStore();
    bus = await backend.createBus();
    engine = createEngine({ store, bus }, { maxPollsPerUser: 1 });
  });

  it('answers a held poll as soon as a message is published', async () => {
    const bob = nextUser();
    const started = Date.now();
    const poll = engine.holdPoll(bob, { cursor: 0, waitMs: 5_000, limit: 100 });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    await engine.publish({ userId: bob, senderId: 'alice', body: '"hi"' });
    const result = await poll;
    expect(result.messages.map((m) => m.body)).toEqual(['"hi"']);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(engine.heldPollsOf(bob)).toBe(0);
  });

  it('answers a short poll at once and a timed-out long poll empty with the same cursor', async () => {
    const bob = nextUser();
    expect(await engine.holdPoll(bob, { cursor: 7, waitMs: 0, limit: 100 })).toEqual({ messages: [], cursor: 7 });
    const started = Date.now();
    expect(await engine.holdPoll(bob, { cursor: 7, waitMs: 300, limit: 100 })).toEqual({ messages: [], cursor: 7 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(engine.heldPolls).toBe(0);
  });

  /**
   * A store whose first mailbox read, once it has its answer, stores `body` for `userId` and wakes
   * through the real bus without a head, before the read returns: a commit and its wake that land
   * between a poll's store read and its decision to sleep.
   */
  function storeCommittingDuringFirstRead(userId: string, body: string, onFirstRead?: (messages: readonly unknown[]) => void): { store: MessageStore; reads(): number } {
    let reads = 0;
    return {
      store: {
        ...store,
        async readPending(reader, cursor, limit) {
          const batch = await store.readPending(reader, cursor, limit);
          reads += 1;
          if (reads === 1) {
            onFirstRead?.(batch.messages);
            await store.insertMessage({ userId, senderId: 'alice', body });
            await bus.wake([userId]);
            // Let the wake reach the subscriber before the engine decides to sleep.
            await sleep(50);
          }
          return batch;
        },
      },
      reads: () => reads,
    };
  }

  it('never misses a message published between its store read and its wait', async () => {
    const bob = nextUser();
    // Exactly the window a "read, then subscribe" engine would sleep through.
    const racing = storeCommittingDuringFirstRead(bob, '"in-the-gap"', (messages) => expect(messages).toEqual([]));
    const racingEngine = createEngine({ store: racing.store, bus });
    const started = Date.now();
    const result = await racingEngine.holdPoll(bob, { cursor: 0, waitMs: 3_000, limit: 100 });
    expect(result.messages.map((m) => m.body)).toEqual(['"in-the-gap"']);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(racing.reads()).toBe(2);
  });

  it('does not learn a head from a read that a head-less wake overtook', async () => {
    // A wake without a head (an idempotent repeat sends one) says "forget what you know": a read
    // that began before it and ends after it must not teach the engine a head, or the next poll
    // at that cursor would wait out its timeout beside a stored message.
    const bob = nextUser();
    await store.insertMessage({ userId: bob, senderId: 'alice', body: '"first"' });
    const racingEngine = createEngine({ store: storeCommittingDuringFirstRead(bob, '"second"').store, bus });
    const first = await racingEngine.holdPoll(bob, { cursor: 0, waitMs: 3_000, limit: 100 });
    expect(first.messages.map((m) => m.body)).toEqual(['"first"']);
    const started = Date.now();
    const second = await racingEngine.holdPoll(bob, { cursor: first.cursor, waitMs: 3_000, limit: 100 });
    expect(second.messages.map((m) => m.body)).toEqual(['"second"']);
    expect(Date.now() - started).toBeLessThan(1_500);
    racingEngine.drain();
  });

  it('releases the waiter at once when the client disconnects', async () => {
    const bob = nextUser();
    const disconnect = new AbortController();
    const poll = engine.holdPoll(bob, { cursor: 0, waitMs: 10_000, limit: 100, signal: disconnect.signal });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    const started = Date.now();
    disconnect.abort();
    await poll;
    expect(Date.now() - started).toBeLessThan(500);
    expect(engine.heldPollsOf(bob)).toBe(0);
  });

  it('leaks no waiters across many aborted and completed polls', async () => {
    const users = Array.from({ length: 50 }, nextUser);
    const controllers = users.map(() => new AbortController());
    const polls = users.map((u, i) => engine.holdPoll(u, { cursor: 0, waitMs: 10_000, limit: 10, signal: controllers[i]!.signal }));
    await waitFor(() => engine.heldPolls === 50);
    controllers.slice(0, 25).forEach((c) => c.abort());
    await Promise.all(users.slice(25).map((u) => engine.publish({ userId: u, senderId: 's', body: '1' })));
    await Promise.all(polls);
    expect(engine.heldPolls).toBe(0);
  });

  it('answers the older poll empty with superseded when the per-user cap is exceeded', async () => {
    const bob = nextUser();
    const older = engine.holdPoll(bob, { cursor: 0, waitMs: 5_000, limit: 100 });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    const newer = engine.holdPoll(bob, { cursor: 0, waitMs: 5_000, limit: 100 });
    expect(await older).toEqual({ messages: [], cursor: 0, superseded: true });
    await waitFor(() => engine.heldPollsOf(bob) === 1);
    await engine.publish({ userId: bob, senderId: 's', body: '"to-newer"' });
    expect((await newer).messages.map((m) => m.body)).toEqual(['"to-newer"']);
  });

  it('refuses a long poll beyond the process-wide cap with 503', async () => {
    const capped = createEngine({ store, bus }, { maxHeldPolls: 1 });
    const first = capped.holdPoll(nextUser(), { cursor: 0, waitMs: 2_000, limit: 10 });
    await waitFor(() => capped.heldPolls === 1);
    await expect(capped.holdPoll(nextUser(), { cursor: 0, waitMs: 2_000, limit: 10 })).rejects.toMatchObject({
      code: 'too_many_polls',
      status: 503,
    });
    capped.drain();
    expect(await first).toMatchObject({ messages: [] });
  });

  it('drain answers held polls at once and makes later polls short', async () => {
    const draining = createEngine({ store, bus });
    const bob = nextUser();
    const held = draining.holdPoll(bob, { cursor: 3, waitMs: 10_000, limit: 10 });
    await waitFor(() => draining.heldPolls === 1);
    const started = Date.now();
    draining.drain();
    expect(await held).toEqual({ messages: [], cursor: 3 });
    expect(await draining.holdPoll(bob, { cursor: 3, waitMs: 10_000, limit: 10 })).toEqual({ messages: [], cursor: 3 });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('acks through the cursor before reading, so an acked message is not returned again', async () => {
    const bob = nextUser();
    await engine.publish({ userId: bob, senderId: 's', body: '1' });
    const first = await engine.holdPoll(bob, { cursor: 0, waitMs: 0, limit: 100 });
    expect(first.messages).toHaveLength(1);
    const again = await engine.holdPoll(bob, { cursor: 0, waitMs: 0, limit: 100 });
    expect(again.messages).toHaveLength(1); // redelivered: never acked
    const after = await engine.holdPoll(bob, { cursor: again.cursor, waitMs: 0, limit: 100 });
    expect(after.messages).toEqual([]);
  });
});

describe('poll engine with an unhealthy bus', () => {
  const backend = useBackend(backendCases('engine fallback')[0]!.make);

  it('re-reads the store on a timer, so a lost wake costs at most the recheck interval', async () => {
    const store = await backend.createStore();
    const silentBus: Bus = {
      wake: async () => {
        throw new Error('redis down');
      },
      onWake: () => () => {},
      onResync: () => () => {},
      healthy: false,
      ping: async () => {
        throw new Error('redis down');
      },
      close: async () => {},
    };
    const errors: string[] = [];
    const engine = createEngine({ store, bus: silentBus }, { busDownRecheckMs: 100, onError: (_e, context) => errors.push(context) });
    const poll = engine.holdPoll('bob', { cursor: 0, waitMs: 5_000, limit: 10 });
    await sleep(50);
    const started = Date.now();
    await engine.publish({ userId: 'bob', senderId: 's', body: '"stored"' });
    const result = await poll;
    expect(result.messages.map((m) => m.body)).toEqual(['"stored"']);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(errors).toEqual(['bus.wake']);
  });
});

describe('poll engine, given a store', () => {
  it('refuses a store without a required method, naming each missing one', () => {
    const bus = createMemoryBus();
    const partial = { ...createFakeStore(), acknowledge: undefined, noteDelivered: undefined } as unknown as MessageStore;
    expect(() => createEngine({ store: partial, bus })).toThrow('Expected the store to implement `acknowledge`, `noteDelivered`');
    expect(() => createEngine({ store: createFakeStore(), bus }).drain()).not.toThrow();
  });
});
