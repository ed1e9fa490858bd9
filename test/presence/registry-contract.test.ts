import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { topicScope, userScope, type PresenceChange, type PresenceEntry, type PresenceRegistry } from '../../src/presence/types.js';
import { createMemoryWorld, presenceRegistryCases, redisPresenceRegistryCases, type PresenceWorld, type RedisPresenceWorld } from '../support/presence-registries.js';
import { sleep, waitFor } from '../support/wait.js';

/** Liveness for a process that outlives the test. */
const LONG_TTL = 60_000;
/** Liveness for a process a test lets die: real time on Redis, so short, yet far above one round trip. */
const SHORT_TTL = 300;
/** Past SHORT_TTL by a margin that absorbs a slow round trip. */
const PAST_SHORT_TTL = SHORT_TTL + 200;
const HOURS_5 = 5 * 3_600_000;

const inUser = (userId: string, clientId = ''): PresenceEntry => ({ scope: userScope(userId), userId, clientId });
const inTopic = (topic: string, userId: string, clientId = ''): PresenceEntry => ({ scope: topicScope(topic), userId, clientId });
const leaving = (entry: PresenceEntry, lastSeenAt: number) => ({ ...entry, lastSeenAt });

/** Changes without their stamp, in a stable order (a sweep answers in no particular order). */
function who(changes: readonly PresenceChange[]): Array<[string, string, string]> {
  return changes.map((change): [string, string, string] => [change.event, change.scope, change.userId]).sort();
}

describe.each(presenceRegistryCases('presence registry contract'))('PresenceRegistry contract on $name', { timeout: 5_000 }, ({ makeWorld }) => {
  let world: PresenceWorld;
  /** Two gateway processes on the same registry. */
  let a: PresenceRegistry;
  let b: PresenceRegistry;

  beforeEach(async () => {
    world = makeWorld();
    [a, b] = await Promise.all([world.connect(), world.connect()]);
  });
  afterEach(async () => {
    await world.cleanup();
  });

  describe('joins', () => {
    it('writes nothing for a process that never sent a heartbeat, and tells it it is unknown', async () => {
      const at = world.wallNow();
      expect(await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], at)).toEqual({ known: false, changes: [] });
      expect(await a.users(['alice'])).toEqual(new Map([['alice', { clients: 0, lastSeenAt: null }]]));
      expect(await a.topicMembers('room', 10)).toStrictEqual({ count: 0, members: [] });

      expect(await a.heartbeat('A', LONG_TTL)).toEqual({ known: false, changes: [] });
      expect(await a.heartbeat('A', LONG_TTL)).toEqual({ known: true, changes: [] });
      expect(await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], at)).toEqual({
        known: true,
        changes: [
          { event: 'join', scope: 'u:alice', userId: 'alice', at },
          { event: 'join', scope: 't:room', userId: 'alice', at },
        ],
      });
      expect((await a.users(['alice'])).get('alice')).toEqual({ clients: 1, lastSeenAt: null });
    });

    it('answers a join only for the first entry of a user in a scope: another client, or the same client through another process, is no change', async () => {
      await a.heartbeat('A', LONG_TTL);
      await b.heartbeat('B', LONG_TTL);
      const at = world.wallNow();
      expect((await a.join('A', [inUser('alice', 'tab-1')], at)).changes).toEqual([{ event: 'join', scope: 'u:alice', userId: 'alice', at }]);
      expect(await a.join('A', [inUser('alice', 'tab-2')], at + 1)).toEqual({ known: true, changes: [] });
      expect(await b.join('B', [inUser('alice', 'tab-1')], at + 2)).toEqual({ known: true, changes: [] });
      expect(await a.join('A', [inUser('alice', 'tab-1')], at + 3)).toEqual({ known: true, changes: [] });
      // The same user in another scope is a join there.
      expect((await b.join('B', [inTopic('room', 'alice', 'tab-1')], at + 4)).changes).toEqual([{ event: 'join', scope: 't:room', userId: 'alice', at: at + 4 }]);

      // tab-1 on A and on B is one client; tab-2 the other.
      expect(await b.users(['alice', 'never-seen'])).toEqual(
        new Map([
          ['alice', { clients: 2, lastSeenAt: null }],
          ['never-seen', { clients: 0, lastSeenAt: null }],
        ]),
      );
    });

    it('writes an announced join but answers no change', async () => {
      await a.heartbeat('A', LONG_TTL);
      await b.heartbeat('B', LONG_TTL);
      const at = world.wallNow();
      expect(await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], at, { announce: true })).toEqual({ known: true, changes: [] });
      expect((await a.users(['alice'])).get('alice')).toEqual({ clients: 1, lastSeenAt: null });
      expect(await a.topicMembers('room', 10)).toStrictEqual({ count: 1, members: [{ userId: 'alice', clients: 1, since: at }] });
      // Written: another process's entry for the same user is then no change either.
      expect(await b.join('B', [inUser('alice', 'tab-2')], at)).toEqual({ known: true, changes: [] });
      // An unknown process's announcement writes nothing.
      expect(await a.join('C', [inUser('carol')], at, { announce: true })).toEqual({ known: false, changes: [] });
      expect((await a.users(['carol'])).get('carol')).toEqual({ clients: 0, lastSeenAt: null });
    });
  });

  describe('leaves', () => {
    it("answers a leave only when the user's last entry in the scope goes, and records when a user went offline", async () => {
      await a.heartbeat('A', LONG_TTL);
      await b.heartbeat('B', LONG_TTL);
      const at = world.wallNow();
      await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], at);
      await b.join('B', [inUser('alice', 'tab-1'), inUser('alice', 'tab-2')], at);

      expect(await a.leave('A', [leaving(inUser('alice', 'tab-1'), at + 100)], at + 200)).toEqual([]);
      expect((await a.users(['alice'])).get('alice')?.clients).toBe(2);
      expect(await b.leave('B', [leaving(inUser('alice', 'tab-1'), at + 300)], at + 400)).toEqual([]);
      expect((await a.users(['alice'])).get('alice')?.clients).toBe(1);
      // An entry that is not there (gone already, or another process's) changes nothing.
      expect(await a.leave('A', [leaving(inUser('alice', 'tab-1'), at + 500), leaving(inUser('alice', 'tab-2'), at + 500)], at + 500)).toEqual([]);
      expect((await a.users(['alice'])).get('alice')?.clients).toBe(1);

      expect(await b.leave('B', [leaving(inUser('alice', 'tab-2'), at + 600)], at + 700)).toEqual([{ event: 'leave', scope: 'u:alice', userId: 'alice', at: at + 700 }]);
      expect((await a.users(['alice'])).get('alice')).toEqual({ clients: 0, lastSeenAt: at + 600 });
      // Still a member of the topic until that entry goes too.
      expect((await a.topicMembers('room', 10)).count).toBe(1);
      expect(await a.leave('A', [leaving(inTopic('room', 'alice', 'tab-1'), at + 800)], at + 900)).toEqual([{ event: 'leave', scope: 't:room', userId: 'alice', at: at + 900 }]);
      expect(await a.topicMembers('room', 10)).toStrictEqual({ count: 0, members: [] });
    });

    it("records the latest lastSeenAt of the user's entries, whichever of them leaves last, and none for a topic leave", async () => {
      await a.heartbeat('A', LONG_TTL);
      await b.heartbeat('B', LONG_TTL);
      const at = world.wallNow();
      await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'bob', 'tab-1')], at);
      await b.join('B', [inUser('alice', 'tab-2')], at);
      // Processes sweep on their own timers: the client seen last may well be removed first.
      expect(await a.leave('A', [leaving(inUser('alice', 'tab-1'), at + 5_000)], at + 6_000)).toEqual([]);
      expect(await b.leave('B', [leaving(inUser('alice', 'tab-2'), at + 1_000)], at + 6_100)).toHaveLength(1);
      expect((await a.users(['alice'])).get('alice')).toEqual({ clients: 0, lastSeenAt: at + 5_000 });

      // In one batch, too.
      await a.join('A', [inUser('carol', 'tab-1'), inUser('carol', 'tab-2')], at);
      expect(await a.leave('A', [leaving(inUser('carol', 'tab-1'), at + 2_000), leaving(inUser('carol', 'tab-2'), at + 1_000)], at + 3_000)).toHaveLength(1);
      expect((await a.users(['carol'])).get('carol')).toEqual({ clients: 0, lastSeenAt: at + 2_000 });

      // A later offline period replaces an earlier one.
      await a.join('A', [inUser('carol', 'tab-3')], at + 10_000);
      await a.leave('A', [leaving(inUser('carol', 'tab-3'), at + 20_000)], at + 21_000);
      expect((await a.users(['carol'])).get('carol')).toEqual({ clients: 0, lastSeenAt: at + 20_000 });

      // Leaving a topic says nothing about when the user was online.
      expect(await a.leave('A', [leaving(inTopic('room', 'bob', 'tab-1'), at + 7_000)], at + 7_000)).toHaveLength(1);
      expect((await a.users(['bob'])).get('bob')).toEqual({ clients: 0, lastSeenAt: null });
    });
  });

  describe('dead processes', () => {
    it("takes a dead process's entries away at the next heartbeat after its liveness ran out, answering the users only it held", async () => {
      const beforeBeat = world.wallNow();
      await a.heartbeat('A', SHORT_TTL);
      const afterBeat = world.wallNow();
      await b.heartbeat('B', LONG_TTL);
      const at = world.wallNow();
      await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1'), inUser('carol', 'tab-1'), inTopic('room', 'carol', 'tab-1')], at);
      // B holds carol in both scopes through its own entries: she stays.
      await b.join('B', [inUser('carol', 'tab-1'), inTopic('room', 'carol', 'tab-9')], at);

      await world.elapse(PAST_SHORT_TTL);
      const beforeSweep = world.wallNow();
      const sweep = await b.heartbeat('B', LONG_TTL);
      const afterSweep = world.wallNow();
      expect(sweep.known).toBe(true);
      expect(who(sweep.changes)).toEqual([
        ['leave', 't:room', 'alice'],
        ['leave', 'u:alice', 'alice'],
      ]);
      for (const change of sweep.changes) expect(change.at).toSatisfy((stamp: number) => stamp >= beforeSweep - 2 && stamp <= afterSweep + 2);
      // Swept once: the next heartbeat has nothing left to answer.
      expect(await b.heartbeat('B', LONG_TTL)).toEqual({ known: true, changes: [] });

      const users = await b.users(['alice', 'carol']);
      // (An online user's lastSeenAt says nothing: only an offline user's is asked for.)
      expect(users.get('carol')?.clients).toBe(1);
      expect(users.get('alice')?.clients).toBe(0);
      // Its clients may have polled until its last heartbeat (whatever the sweeper's own ttl).
      expect(users.get('alice')?.lastSeenAt).toSatisfy((seen: number) => seen >= beforeBeat - 2 && seen <= afterBeat + 2);
      expect(await b.topicMembers('room', 10)).toStrictEqual({ count: 1, members: [{ userId: 'carol', clients: 1, since: at }] });

      // Declared dead: its joins write nothing until it heartbeats, and that heartbeat says so.
      expect(await a.join('A', [inUser('alice', 'tab-1'), inUser('dave', 'tab-1')], world.wallNow())).toEqual({ known: false, changes: [] });
      expect(await a.heartbeat('A', SHORT_TTL)).toEqual({ known: false, changes: [] });
      expect((await a.users(['alice', 'dave'])).get('dave')).toEqual({ clients: 0, lastSeenAt: null });
      expect((await a.users(['alice'])).get('alice')?.clients).toBe(0);
    });

    it("keeps a process alive while it heartbeats within its ttl, and its stamps (hours off) move neither liveness nor presence", async () => {
      // A's caller clock runs 5 hours ahead, B's 5 hours behind: liveness is the registry's alone.
      await a.heartbeat('A', 1_000);
      await b.heartbeat('B', LONG_TTL);
      const wall = world.wallNow();
      expect((await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], wall + HOURS_5)).changes).toEqual([
        { event: 'join', scope: 'u:alice', userId: 'alice', at: wall + HOURS_5 },
        { event: 'join', scope: 't:room', userId: 'alice', at: wall + HOURS_5 },
      ]);
      await b.join('B', [inUser('bob', 'tab-1'), inTopic('room', 'bob', 'tab-1')], wall - HOURS_5);

      // B, stamped hours in the past, is not dead; A, stamped hours ahead, did not extend its liveness.
      expect(await b.heartbeat('B', LONG_TTL)).toEqual({ known: true, changes: [] });
      expect(await a.heartbeat('A', 1_000)).toEqual({ known: true, changes: [] });
      expect(await b.topicMembers('room', 10)).toStrictEqual({
        count: 2,
        members: [
          { userId: 'bob', clients: 1, since: wall - HOURS_5 },
          { userId: 'alice', clients: 1, since: wall + HOURS_5 },
        ],
      });

      await world.elapse(1_200);
      expect(who((await b.heartbeat('B', LONG_TTL)).changes)).toEqual([
        ['leave', 't:room', 'alice'],
        ['leave', 'u:alice', 'alice'],
      ]);
      const users = await b.users(['alice', 'bob']);
      expect(users.get('bob')).toEqual({ clients: 1, lastSeenAt: null });
      expect(users.get('alice')?.clients).toBe(0);
    });
  });

  describe('topic members', () => {
    it('lists each member (distinct clients, since its earliest entry) up to maxListed, and only counts above it', async () => {
      await a.heartbeat('A', LONG_TTL);
      await b.heartbeat('B', LONG_TTL);
      const at = world.wallNow();
      await a.join('A', [inTopic('room', 'carol')], at + 1);
      await a.join('A', [inTopic('room', 'alice', 'tab-1')], at + 10);
      await a.join('A', [inTopic('room', 'alice', 'tab-2')], at + 20);
      await b.join('B', [inTopic('room', 'alice', 'tab-1'), inTopic('room', 'bob', 'tab-1')], at + 5);
      await b.join('B', [inTopic('other', 'dave', 'tab-1'), inUser('erin', 'tab-1')], at);

      const listed = [
        { userId: 'carol', clients: 1, since: at + 1 },
        { userId: 'alice', clients: 2, since: at + 5 },
        { userId: 'bob', clients: 1, since: at + 5 },
      ];
      expect(await a.topicMembers('room', 100)).toStrictEqual({ count: 3, members: listed });
      expect(await a.topicMembers('room', 3)).toStrictEqual({ count: 3, members: listed });
      expect(await a.topicMembers('room', 2)).toStrictEqual({ count: 3 });
      expect(await a.topicMembers('room', 0)).toStrictEqual({ count: 3 });
      expect(await a.topicMembers('other', 1)).toStrictEqual({ count: 1, members: [{ userId: 'dave', clients: 1, since: at }] });
      // A user's own scope is not a topic, and a topic nobody is in lists nobody (0 is within any maximum).
      expect(await a.topicMembers('erin', 10)).toStrictEqual({ count: 0, members: [] });
      expect(await a.topicMembers('nobody', 10)).toStrictEqual({ count: 0, members: [] });
    });

    it('counts a topic of 10,000 members without listing them above maxListed', async () => {
      await a.heartbeat('A', LONG_TTL);
      const at = world.wallNow();
      let joined = 0;
      for (let batch = 0; batch < 10; batch++) {
        const entries = Array.from({ length: 1_000 }, (_, i) => inTopic('crowd', `user-${batch * 1_000 + i}`, 'tab-1'));
        const answer = await a.join('A', entries, at);
        expect(answer.known).toBe(true);
        joined += answer.changes.length;
      }
      expect(joined).toBe(10_000);
      // The count alone, not 10,000 entries read and dropped: the reply carries no members at all.
      expect(await a.topicMembers('crowd', 100)).toStrictEqual({ count: 10_000 });
    });
  });

  describe('lost registry data', () => {
    it('tells a process it is unknown after the data was lost, and takes its announcement back as no change', async () => {
      await a.heartbeat('A', LONG_TTL);
      const at = world.wallNow();
      await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], at);
      expect((await a.users(['alice'])).get('alice')?.clients).toBe(1);

      await world.loseData();
      expect((await a.users(['alice'])).get('alice')?.clients).toBe(0);
      expect(await a.join('A', [inUser('bob', 'tab-1')], at)).toEqual({ known: false, changes: [] });
      expect(await a.heartbeat('A', LONG_TTL)).toEqual({ known: false, changes: [] });
      // What the tracker does next: announce everything it holds, then go on as before.
      expect(await a.join('A', [inUser('alice', 'tab-1'), inTopic('room', 'alice', 'tab-1')], at, { announce: true })).toEqual({ known: true, changes: [] });
      expect((await a.users(['alice', 'bob'])).get('alice')?.clients).toBe(1);
      expect((await a.join('A', [inUser('bob', 'tab-1')], at)).changes).toHaveLength(1);
      expect(await a.heartbeat('A', LONG_TTL)).toEqual({ known: true, changes: [] });
    });
  });
});

describe('memory registry clocks', () => {
  it('lets a wall-clock step neither kill a process nor keep it alive: only the monotonic clock counts', async () => {
    const world = createMemoryWorld();
    const registry = await world.connect();
    await registry.heartbeat('A', 1_000);
    await registry.heartbeat('B', 1_000);
    await registry.join('A', [inUser('alice', 'tab-1')], world.wallNow());

    world.stepWallClock(+HOURS_5);
    expect(await registry.heartbeat('B', 1_000)).toEqual({ known: true, changes: [] });
    world.stepWallClock(-2 * HOURS_5);
    expect(await registry.heartbeat('B', 1_000)).toEqual({ known: true, changes: [] });
    expect(await registry.heartbeat('A', 1_000)).toEqual({ known: true, changes: [] });
    expect((await registry.users(['alice'])).get('alice')?.clients).toBe(1);

    // 1,500 ms of monotonic time without A's heartbeat: dead, whatever the wall clock did.
    await world.elapse(1_500);
    const sweep = await registry.heartbeat('B', 1_000);
    expect(who(sweep.changes)).toEqual([['leave', 'u:alice', 'alice']]);
    expect(sweep.changes[0]?.at).toBe(world.wallNow());
    // Last seen at A's last heartbeat, on the wall clock as it reads now.
    expect((await registry.users(['alice'])).get('alice')).toEqual({ clients: 0, lastSeenAt: world.wallNow() - 1_500 });
  });
});

/**
 * Counts the script calls the servers execute with the registry's key. MONITOR rather than INFO
 * commandstats: the counters are server-wide and parallel suites share these servers, while the key
 * (its prefix) is this test's alone. Commands a script runs show up in MONITOR too, under their own
 * names, so only EVAL / EVALSHA count.
 */
async function monitorScriptCalls(servers: Redis[], scriptKey: string) {
  let calls = 0;
  const monitors = await Promise.all(servers.map((server) => server.monitor()));
  for (const monitor of monitors) {
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^eval(sha)?$/i.test(args[0] ?? '') && args[3] === scriptKey) calls += 1;
    });
  }
  return {
    /** The calls seen so far, once the monitor had time to hear the last one. */
    async settled(expected: number): Promise<number> {
      await waitFor(() => calls >= expected, 2_000).catch(() => {});
      await sleep(100);
      return calls;
    },
    reset: () => (calls = 0),
    stop: () => monitors.forEach((monitor) => monitor.disconnect()),
  };
}

describe.each(redisPresenceRegistryCases('presence registry round trips'))('Redis presence registry round trips on $name', { timeout: 5_000 }, ({ makeWorld }) => {
  let world: RedisPresenceWorld;

  beforeEach(() => {
    world = makeWorld();
  });
  afterEach(async () => {
    await world.cleanup();
  });

  it('answers users() for 100 users and topicMembers() of 100 members with one script call each', async () => {
    const registry = await world.connect();
    const users = Array.from({ length: 100 }, (_, i) => `user-${i}`);
    await registry.heartbeat('A', LONG_TTL);
    await registry.join('A', users.flatMap((userId) => [inUser(userId, 'tab-1'), inTopic('room', userId, 'tab-1')]), world.wallNow());
    // Loads both scripts, so a NOSCRIPT retry is not counted below.
    await registry.users(['warm-up']);
    await registry.topicMembers('warm-up', 1);

    const monitor = await monitorScriptCalls(world.connectToEachServer(), world.scriptKey);
    try {
      const presence = await registry.users(users);
      expect(await monitor.settled(1)).toBe(1);
      expect([...presence.values()].every((user) => user.clients === 1)).toBe(true);
      expect(presence.size).toBe(100);

      monitor.reset();
      const members = await registry.topicMembers('room', 100);
      expect(await monitor.settled(1)).toBe(1);
      expect(members.count).toBe(100);
      expect(members.members).toHaveLength(100);
    } finally {
      monitor.stop();
    }
  });
});
