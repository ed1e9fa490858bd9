import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Bus } from '../../src/bus/types.js';
import { createEngine, type Engine, type PollResult } from '../../src/core/engine.js';
import { topicKey, type TopicRead } from '../../src/core/model.js';
import type { MessageStore } from '../../src/store/types.js';
import { backendCases, uniqueName, useBackend, userIds } from '../support/backends.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * Topic readers in the engine: held polls indexed by the topics they read, so a topic's wake
 * reaches exactly its readers; readers at one position sharing one store read (and one page
 * object, which the HTTP layer serialises once); and the tail of this process's own commits
 * answering them without a read. The store is wrapped to count its topic and mailbox reads.
 */
describe.each(backendCases('engine topic readers'))('poll engine with topic readers on $name', ({ name, make }) => {
  const backend = useBackend(make);
  let store: MessageStore;
  let counted: MessageStore;
  const topicReads: TopicRead[] = [];
  const mailboxReads: string[] = [];
  /** Topic and mailbox reads started and not yet answered. */
  let readsInFlight = 0;
  let busHere: Bus;
  let busElsewhere: Bus;
  const engines: Engine[] = [];
  const nextUser = userIds('topic-engine');
  let topicCount = 0;
  const nextTopic = () => `engine.room:${Date.now().toString(36)}-${++topicCount}`;

  beforeAll(async () => {
    store = await backend.createStore();
    counted = {
      ...store,
      readTopic: (read) => {
        topicReads.push(read);
        readsInFlight += 1;
        return store.readTopic(read).finally(() => {
          readsInFlight -= 1;
        });
      },
      readPending: (userId, cursor, limit) => {
        mailboxReads.push(userId);
        readsInFlight += 1;
        return store.readPending(userId, cursor, limit).finally(() => {
          readsInFlight -= 1;
        });
      },
    };
    // Two processes: one store, each its own bus connection on one prefix (in-process: one bus).
    const prefix = `${uniqueName('topics')}:`;
    busHere = await backend.createBus(prefix);
    busElsewhere = name === 'embedded' ? busHere : await backend.createBus(prefix);
  });

  afterEach(() => {
    for (const engine of engines.splice(0)) engine.drain();
  });

  /** An engine on the counting store ("here") or on the plain store and the other bus connection ("elsewhere"). */
  function engineHere(options: Parameters<typeof createEngine>[1] = {}): Engine {
    const engine = createEngine({ store: counted, bus: busHere }, options);
    engines.push(engine);
    return engine;
  }
  function engineElsewhere(): Engine {
    const engine = createEngine({ store, bus: busElsewhere });
    engines.push(engine);
    return engine;
  }

  const readsOf = (topic: string) => topicReads.filter((read) => read.key === topicKey(topic)).length;
  const mailboxReadsOf = (userId: string) => mailboxReads.filter((read) => read === userId).length;

  /** Resolves when `bus` has delivered a wake of `key` naming a head of at least `head` (bounded by the test's timeout). */
  function hearing(bus: Bus, key: string, head: number): Promise<void> {
    return new Promise((resolve) => {
      const stop = bus.onWake((woken, at) => {
        if (woken === key && at !== undefined && at >= head) {
          stop();
          resolve();
        }
      });
    });
  }

  /**
   * Every held poll has made its first look and sleeps: registered, and no read still running (a
   * reader woken while its first look is under way looks again on its own, apart from the rest).
   */
  async function settled(engine: Engine, topic: string, readers: number): Promise<void> {
    await waitFor(() => engine.readersOf(topic) === readers, 10_000);
    await waitFor(() => readsInFlight === 0, 10_000);
    await sleep(20);
  }

  function holdReaders(engine: Engine, topic: string, position: number | null, count: number, signal?: AbortSignal): Array<Promise<PollResult>> {
    return Array.from({ length: count }, () =>
      engine.holdPoll(nextUser(), { cursor: 0, topics: [{ name: topic, position }], waitMs: 15_000, limit: 100, ...(signal ? { signal } : {}) }),
    );
  }

  it('answers 1,000 readers at one position from its own commit without a store read, all with one page object', async () => {
    const engine = engineHere();
    const topic = nextTopic();
    await engine.publish({ userId: topicKey(topic), senderId: 'announcer', body: '"before"' });
    const readsBefore = readsOf(topic);
    const polls = holdReaders(engine, topic, 1, 1_000);
    await settled(engine, topic, 1_000);
    // The head is known from the publish: the first looks read nothing either.
    expect(readsOf(topic)).toBe(readsBefore);

    const mailboxReadsHeld = mailboxReads.length;
    await engine.publish({ userId: topicKey(topic), senderId: 'announcer', body: '"news"' });
    const results = await Promise.all(polls);
    expect(readsOf(topic)).toBe(readsBefore);
    // Nor their mailboxes: each was read empty at its first look, and nothing woke it since.
    expect(mailboxReads.length).toBe(mailboxReadsHeld);
    for (const result of results) {
      expect(result.messages).toEqual([]);
      expect(result.topics).toEqual([{ topic, messages: [expect.objectContaining({ seq: 2, body: '"news"' })], position: 2 }]);
    }
    expect(new Set(results.map((result) => result.topics![0]!.messages)).size).toBe(1);
    expect(engine.readersOf(topic)).toBe(0);
  }, 30_000);

  it('answers 1,000 readers at one position after a commit of another process with one shared store read', async () => {
    const here = engineHere();
    const elsewhere = engineElsewhere();
    const topic = nextTopic();
    const key = topicKey(topic);
    const firstHeard = hearing(busHere, key, 1);
    await elsewhere.publish({ userId: key, senderId: 'announcer', body: '"before"' });
    await firstHeard;

    const readsBefore = readsOf(topic);
    const polls = holdReaders(here, topic, 1, 1_000);
    await settled(here, topic, 1_000);
    // Arriving together, they looked once between them (or not at all: the wake told the head).
    expect(readsOf(topic) - readsBefore).toBeLessThanOrEqual(1);

    const readsHeld = readsOf(topic);
    const mailboxReadsHeld = mailboxReads.length;
    await elsewhere.publish({ userId: key, senderId: 'announcer', body: '"news"' });
    const results = await Promise.all(polls);
    expect(readsOf(topic) - readsHeld).toBe(1);
    expect(mailboxReads.length).toBe(mailboxReadsHeld);
    expect(topicReads.filter((read) => read.key === key).at(-1)).toEqual({ key, after: 1, limit: 100 });
    for (const result of results) expect(result.topics).toEqual([{ topic, messages: [expect.objectContaining({ seq: 2, body: '"news"' })], position: 2 }]);
    expect(new Set(results.map((result) => result.topics![0]!.messages)).size).toBe(1);
  }, 30_000);

  it('never lets a reader share a read that began before a wake it registered too late to hear', async () => {
    // Reader A's read takes its snapshot (empty), then hangs; a commit elsewhere wakes A; reader B
    // registers after that wake and looks. Joining A's read would hand B the old snapshot, and B
    // would sleep beside the message until its timeout.
    const topic = nextTopic();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let first = true;
    const slowFirstRead: MessageStore = {
      ...store,
      readTopic: async (read) => {
        const page = await store.readTopic(read);
        if (first) {
          first = false;
          await gate;
        }
        return page;
      },
    };
    const engine = createEngine({ store: slowFirstRead, bus: busHere });
    engines.push(engine);
    const [a, b] = [nextUser(), nextUser()];
    const pollA = engine.holdPoll(a, { cursor: 0, waitMs: 5_000, limit: 10, topics: [{ name: topic, position: 0 }] });
    await waitFor(() => engine.readersOf(topic) === 1);
    await sleep(30);
    const heard = hearing(busHere, topicKey(topic), 1);
    await engineElsewhere().publish({ userId: topicKey(topic), senderId: 'announcer', body: '"news"' });
    await heard;
    const started = Date.now();
    const pollB = engine.holdPoll(b, { cursor: 0, waitMs: 5_000, limit: 10, topics: [{ name: topic, position: 0 }] });
    await sleep(100);
    release();
    const [answerA, answerB] = await Promise.all([pollA, pollB]);
    expect(answerB.topics![0]!.messages.map((message) => message.body)).toEqual(['"news"']);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(answerA.topics![0]!.messages.map((message) => message.body)).toEqual(['"news"']);
  });

  it('shares one read per position: 200 readers behind the head at two positions cost two reads', async () => {
    const here = engineHere();
    const elsewhere = engineElsewhere();
    const topic = nextTopic();
    const key = topicKey(topic);
    const heard = hearing(busHere, key, 2);
    await elsewhere.publishMany([1, 2].map((n) => ({ userId: key, senderId: 'announcer', body: String(n) })));
    await heard;
    const readsBefore = readsOf(topic);
    // Behind the head, so answered at their first look.
    const [fromZero, fromOne] = await Promise.all([Promise.all(holdReaders(here, topic, 0, 100)), Promise.all(holdReaders(here, topic, 1, 100))]);
    expect(readsOf(topic) - readsBefore).toBe(2);
    for (const result of fromZero) expect(result.topics![0]!.messages.map((m) => m.seq)).toEqual([1, 2]);
    for (const result of fromOne) expect(result.topics![0]!.messages.map((m) => m.seq)).toEqual([2]);
    expect(new Set(fromZero.map((result) => result.topics![0]!.messages)).size).toBe(1);
    expect(new Set(fromOne.map((result) => result.topics![0]!.messages)).size).toBe(1);
  }, 30_000);

  it('reads the store when its own commits do not continue a reader’s position (another process committed between)', async () => {
    const engine = engineHere();
    const topic = nextTopic();
    const key = topicKey(topic);
    await engine.publish({ userId: key, senderId: 'announcer', body: '"1"' });
    const held = engine.holdPoll(nextUser(), { cursor: 0, topics: [{ name: topic, position: 1 }], waitMs: 5_000, limit: 10 });
    await settled(engine, topic, 1);
    // Committed by a process whose wake has not arrived (seq 2), then one of ours (seq 3).
    await store.insertMessage({ userId: key, senderId: 'mallory', body: '"2, unannounced"' });
    const readsHeld = readsOf(topic);
    await engine.publish({ userId: key, senderId: 'announcer', body: '"3"' });
    const result = await held;
    expect(result.topics![0]!.messages.map((m) => [m.seq, m.body])).toEqual([
      [2, '"2, unannounced"'],
      [3, '"3"'],
    ]);
    expect(readsOf(topic) - readsHeld).toBe(1);
  });

  it('answers a reader behind its own commits as a read would, once another process committed after them', async () => {
    const here = engineHere();
    const elsewhere = engineElsewhere();
    const topic = nextTopic();
    const key = topicKey(topic);
    await here.publish({ userId: key, senderId: 'announcer', body: '"1, ours"' });
    const heard = hearing(busHere, key, 2);
    await elsewhere.publish({ userId: key, senderId: 'announcer', body: '"2, theirs"' });
    await heard;
    // What this process committed (1) no longer reaches the head (2): a page from it would stop short.
    const fromStart = await here.holdPoll(nextUser(), { cursor: 0, topics: [{ name: topic, position: 0 }], waitMs: 0, limit: 10 });
    expect(fromStart.topics![0]!.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect(fromStart.topics![0]!.position).toBe(2);
  });

  it('wakes only the readers of the topic woken: not other topics’, not a mailbox of the same name', async () => {
    const here = engineHere();
    const elsewhere = engineElsewhere();
    const [news, sport] = [nextTopic(), nextTopic()];
    // A user whose id is also a topic's name: `#<name>` keeps the two apart.
    const sameName = nextUser();
    const stop = new AbortController();
    const hold = (userId: string, topics: Array<{ name: string; position: number }>) =>
      here.holdPoll(userId, { cursor: 0, topics, waitMs: 15_000, limit: 10, signal: stop.signal });
    const sportReaders = Array.from({ length: 3 }, nextUser);
    const newsReaders = Array.from({ length: 3 }, nextUser);
    const sameNameReader = nextUser();
    const newsPolls = newsReaders.map((user) => hold(user, [{ name: news, position: 0 }]));
    const sportPolls = sportReaders.map((user) => hold(user, [{ name: sport, position: 0 }]));
    const mailboxPoll = hold(sameName, []);
    const sameNamePoll = hold(sameNameReader, [{ name: sameName, position: 0 }]);
    await settled(here, news, 3);
    await settled(here, sport, 3);
    await settled(here, sameName, 1);
    await waitFor(() => here.heldPollsOf(sameName) === 1);

    const topicReadsHeld = topicReads.length;
    const quiet = [...sportReaders, sameName, sameNameReader];
    const quietMailboxReads = () => quiet.map(mailboxReadsOf);
    const mailboxReadsHeld = quietMailboxReads();

    await elsewhere.publish({ userId: topicKey(news), senderId: 'announcer', body: '"news"' });
    for (const result of await Promise.all(newsPolls)) expect(result.topics![0]!.messages.map((m) => m.body)).toEqual(['"news"']);
    await sleep(100);
    expect(topicReads.slice(topicReadsHeld).map((read) => read.key)).toEqual([topicKey(news)]);
    expect(quietMailboxReads()).toEqual(mailboxReadsHeld);
    expect([here.readersOf(news), here.readersOf(sport), here.readersOf(sameName), here.heldPollsOf(sameName)]).toEqual([0, 3, 1, 1]);

    // The mailbox named like the topic: its poll wakes, the topic's reader does not.
    await elsewhere.publish({ userId: sameName, senderId: 'alice', body: '"direct"' });
    expect((await mailboxPoll).messages.map((m) => m.body)).toEqual(['"direct"']);
    await sleep(100);
    expect(topicReads.slice(topicReadsHeld).map((read) => read.key)).toEqual([topicKey(news)]);
    expect(mailboxReadsOf(sameNameReader)).toBe(mailboxReadsHeld[quiet.indexOf(sameNameReader)]);
    expect(here.readersOf(sameName)).toBe(1);

    // And the topic named like the mailbox: its reader wakes.
    await elsewhere.publish({ userId: topicKey(sameName), senderId: 'announcer', body: '"to the topic"' });
    expect((await sameNamePoll).topics).toEqual([{ topic: sameName, messages: [expect.objectContaining({ body: '"to the topic"' })], position: 1 }]);
    expect(here.readersOf(sport)).toBe(3);
    stop.abort();
    for (const result of await Promise.all(sportPolls)) expect(result.topics).toEqual([{ topic: sport, messages: [], position: 0 }]);
    expect(here.readersOf(sport)).toBe(0);
  }, 30_000);

  it('takes a reader out of the topic index when its poll ends: aborted, superseded, timed out or drained', async () => {
    const engine = engineHere({ maxPollsPerUser: 1 });
    const [one, two] = [nextTopic(), nextTopic()];
    const [gone, stays, replaced] = [nextUser(), nextUser(), nextUser()];
    const disconnect = new AbortController();
    const aborted = engine.holdPoll(gone, { cursor: 0, topics: [{ name: one, position: 0 }, { name: two, position: null }], waitMs: 10_000, limit: 10, signal: disconnect.signal });
    const staying = engine.holdPoll(stays, { cursor: 0, topics: [{ name: one, position: 0 }], waitMs: 10_000, limit: 10 });
    await waitFor(() => engine.readersOf(one) === 2 && engine.readersOf(two) === 1);
    disconnect.abort();
    expect(await aborted).toEqual({ messages: [], cursor: 0, topics: [{ topic: one, messages: [], position: 0 }, { topic: two, messages: [], position: 0 }] });
    expect([engine.readersOf(one), engine.readersOf(two)]).toEqual([1, 0]);
    // A wake of the topic it read finds nobody here: no read.
    const readsBefore = readsOf(two);
    await busElsewhere.wake([topicKey(two)]);
    await sleep(100);
    expect(readsOf(two)).toBe(readsBefore);

    const older = engine.holdPoll(replaced, { cursor: 0, topics: [{ name: two, position: 0 }], waitMs: 10_000, limit: 10 });
    await waitFor(() => engine.readersOf(two) === 1);
    const newer = engine.holdPoll(replaced, { cursor: 0, waitMs: 200, limit: 10 });
    expect((await older).superseded).toBe(true);
    expect(engine.readersOf(two)).toBe(0);
    await newer;

    const timedOut = engine.holdPoll(nextUser(), { cursor: 0, topics: [{ name: two, position: 0 }], waitMs: 200, limit: 10 });
    await waitFor(() => engine.readersOf(two) === 1);
    expect((await timedOut).topics).toEqual([{ topic: two, messages: [], position: 0 }]);
    expect(engine.readersOf(two)).toBe(0);

    engine.drain();
    expect((await staying).topics).toEqual([{ topic: one, messages: [], position: 0 }]);
    expect([engine.readersOf(one), engine.readersOf(two), engine.heldPolls]).toEqual([0, 0, 0]);
  });

  it('fixes "from now" at the first look: a commit between that look and the wait is delivered, not skipped', async () => {
    const elsewhere = engineElsewhere();
    const topic = nextTopic();
    const key = topicKey(topic);
    await store.insertMessages([1, 2].map((n) => ({ userId: key, senderId: 'announcer', body: String(n) })));
    let raced = false;
    // A store that lets another process commit (and wake) right after the head was read: a
    // reader that looked "from now" again would learn the new head and skip the message.
    const racingStore: MessageStore = {
      ...counted,
      async readTopic(read) {
        const page = await counted.readTopic(read);
        if (read.after === null && !raced) {
          raced = true;
          expect(page).toEqual({ messages: [], position: 2 });
          const heard = hearing(busHere, key, 3);
          await elsewhere.publish({ userId: key, senderId: 'announcer', body: '"in the gap"' });
          await heard;
        }
        return page;
      },
    };
    const engine = createEngine({ store: racingStore, bus: busHere });
    engines.push(engine);
    const started = Date.now();
    const result = await engine.holdPoll(nextUser(), { cursor: 0, topics: [{ name: topic, position: null }], waitMs: 5_000, limit: 10 });
    expect(result.topics).toEqual([{ topic, messages: [expect.objectContaining({ seq: 3, body: '"in the gap"' })], position: 3 }]);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(raced).toBe(true);
  });

  it('misses nothing "from now" while commits land during the wait, and a short poll learns the head', async () => {
    const here = engineHere();
    const elsewhere = engineElsewhere();
    const topic = nextTopic();
    const key = topicKey(topic);
    await elsewhere.publish({ userId: key, senderId: 'announcer', body: '"old"' });
    expect((await here.holdPoll(nextUser(), { cursor: 0, topics: [{ name: topic, position: null }], waitMs: 0, limit: 10 })).topics).toEqual([
      { topic, messages: [], position: 1 },
    ]);
    const reader = nextUser();
    const held = here.holdPoll(reader, { cursor: 0, topics: [{ name: topic, position: null }], waitMs: 5_000, limit: 10 });
    await settled(here, topic, 1);
    await Promise.all([
      elsewhere.publish({ userId: key, senderId: 'announcer', body: '"a"' }),
      here.publish({ userId: key, senderId: 'announcer', body: '"b"' }),
      elsewhere.publish({ userId: key, senderId: 'announcer', body: '"c"' }),
    ]);
    const first = await held;
    const bodies = first.topics![0]!.messages.map((m) => m.body);
    let position = first.topics![0]!.position;
    for (let poll = 0; poll < 3 && bodies.length < 3; poll += 1) {
      const next = await here.holdPoll(reader, { cursor: 0, topics: [{ name: topic, position }], waitMs: 2_000, limit: 10 });
      bodies.push(...next.topics![0]!.messages.map((m) => m.body));
      position = next.topics![0]!.position;
    }
    expect(bodies.sort()).toEqual(['"a"', '"b"', '"c"']);
    expect(position).toBe(4);
  });
});
