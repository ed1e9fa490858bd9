import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMemoryPresenceRegistry } from '../../src/presence/memory-registry.js';
import { createPresenceTracker, type PresenceTracker, type PresenceTrackerOptions } from '../../src/presence/tracker.js';
import type { PresenceEvent, PresenceRegistry } from '../../src/presence/types.js';
import { seededRandom } from '../../src/bench/stats.js';

/**
 * The tracker on fake timers: every interval, timeout and immediate fires only when a test moves
 * time, so a minute of polling runs in well under a second and the same seed replays it exactly.
 *
 * Two clocks, as in production: the monotonic one (`performance.now()`, which the fake timers move
 * with the timers but `vi.setSystemTime` leaves alone) runs the grace and the liveness; the wall
 * one (`Date.now()`, which `vi.setSystemTime` steps like an NTP correction) only stamps events.
 */

const GRACE_MS = 15_000;
const SWEEP_MS = 1_000;
const HOUR_MS = 3_600_000;

const monotonicNow = () => performance.now();
const wallNow = () => Date.now();

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'Date', 'performance'],
    now: Date.UTC(2030, 0, 1),
  });
});

const openTrackers: PresenceTracker[] = [];
afterEach(async () => {
  await Promise.all(openTrackers.splice(0).map((tracker) => tracker.close()));
  vi.useRealTimers();
});

/** Moves both clocks and fires what falls due, letting each batch's registry calls finish. */
const elapse = (ms: number) => vi.advanceTimersByTimeAsync(ms);
/** Runs the batch this tick's polls scheduled. */
const settle = () => vi.advanceTimersByTimeAsync(0);

function freshRegistry(): PresenceRegistry {
  return createMemoryPresenceRegistry({ now: monotonicNow, wallClock: wallNow });
}

/**
 * A registry wrapper that counts what reaches the registry, can make `join` or `leave` throw (an
 * unreachable Redis), and can swap the registry behind it (one that lost its data).
 */
function probeRegistry(initial: PresenceRegistry = freshRegistry()) {
  let target = initial;
  const writes = { joinCalls: 0, joinEntries: 0, announceCalls: 0, announceEntries: 0, leaveCalls: 0, leaveEntries: 0, heartbeats: 0 };
  const failing = { join: false, leave: false };
  const failedCalls = { join: 0, leave: 0 };
  /** Monotonic ms of each process's last heartbeat. */
  const lastHeartbeat = new Map<string, number>();
  const registry: PresenceRegistry = {
    async join(processId, entries, at, options) {
      if (failing.join) {
        failedCalls.join += 1;
        throw new Error('registry unreachable (join)');
      }
      if (options?.announce) {
        writes.announceCalls += 1;
        writes.announceEntries += entries.length;
      } else {
        writes.joinCalls += 1;
        writes.joinEntries += entries.length;
      }
      return target.join(processId, entries, at, options);
    },
    async leave(processId, entries, at) {
      if (failing.leave) {
        failedCalls.leave += 1;
        throw new Error('registry unreachable (leave)');
      }
      writes.leaveCalls += 1;
      writes.leaveEntries += entries.length;
      return target.leave(processId, entries, at);
    },
    async heartbeat(processId, ttlMs) {
      writes.heartbeats += 1;
      lastHeartbeat.set(processId, monotonicNow());
      return target.heartbeat(processId, ttlMs);
    },
    users: (userIds) => target.users(userIds),
    topicMembers: (topic, maxListed) => target.topicMembers(topic, maxListed),
    close: async () => {},
  };
  return {
    registry,
    writes,
    failing,
    failedCalls,
    lastHeartbeat,
    replaceTarget(next: PresenceRegistry) {
      target = next;
    },
  };
}
type RegistryProbe = ReturnType<typeof probeRegistry>;

/** A reported event, with the clocks read when the tracker reported it. */
type SeenEvent = PresenceEvent & { monotonicAt: number; wallAt: number };

function startTracker(probe: RegistryProbe, options: Partial<PresenceTrackerOptions> = {}) {
  const events: SeenEvent[] = [];
  const errors: unknown[] = [];
  const tracker = createPresenceTracker(
    { registry: probe.registry, clock: { now: wallNow }, monotonic: monotonicNow },
    {
      graceMs: GRACE_MS,
      sweepMs: SWEEP_MS,
      onEvents: (batch) => {
        for (const event of batch) events.push({ ...event, monotonicAt: monotonicNow(), wallAt: wallNow() });
      },
      onError: (error) => errors.push(error),
      ...options,
    },
  );
  openTrackers.push(tracker);
  return { tracker, events, errors };
}

const eventsOf = (events: readonly SeenEvent[], kind: 'join' | 'leave', user?: string) =>
  events.filter((event) => event.event === kind && (user === undefined || event.user === user));

async function clientsOf(tracker: PresenceTracker, userId: string): Promise<number> {
  return (await tracker.users([userId])).get(userId)!.clients;
}

/** Moves time to `phaseMs` after one of the tracker's sweeps (its interval started at `startedAt`), the first such moment ahead. */
async function elapseToSweepPhase(startedAt: number, phaseMs: number): Promise<void> {
  const now = monotonicNow();
  let target = startedAt + Math.floor((now - startedAt) / SWEEP_MS) * SWEEP_MS + phaseMs;
  while (target <= now) target += SWEEP_MS;
  await elapse(target - now);
}

// ---------------------------------------------------------------------------------------------
// Re-poll churn: a seeded fleet of clients re-polling at a high rate, and the checker that says
// whether the tracker flapped (a leave/join pair while a client kept polling).


interface ChurnPlan {
  clients: number;
  users: number;
  topics: number;
  /** Polls start only before this (ms after the run began); the held ones then end on their own. */
  runMs: number;
  /** How long the run keeps going after the last poll ended, for the leaves. */
  afterMs: number;
  holdMaxMs: number;
  gapMaxMs: number;
  seed: number;
  /** Wall-clock steps (`vi.setSystemTime`), at ms after the run began. */
  wallSteps?: ReadonlyArray<{ atMs: number; byMs: number }>;
}

interface ChurnRun {
  polls: number;
  /** Distinct (client, scope) pairs: what a tracker must write once each way, whatever the poll rate. */
  clientScopes: number;
  /** `user\ntopic` → monotonic ms when its last poll ended. */
  lastEnd: Map<string, number>;
  /** Monotonic ms when the run stopped starting polls. */
  stoppedAt: number;
}

const pairKey = (user: string, topic: string) => `${user}\n${topic}`;

/**
 * Drives the fleet one simulated millisecond at a time: each client polls its own fixed topics
 * (1–3 of them), holds each poll 0–`holdMaxMs` ms and re-polls 0–`gapMaxMs` ms later.
 */
async function runChurn(tracker: PresenceTracker, plan: ChurnPlan): Promise<ChurnRun> {
  const random = seededRandom(plan.seed);
  const randomInt = (max: number) => Math.floor(random() * (max + 1));
  const endMs = plan.runMs + plan.holdMaxMs + plan.afterMs;
  const due: Array<Array<() => void>> = Array.from({ length: endMs + 1 }, () => []);
  const lastEnd = new Map<string, number>();
  let polls = 0;
  let clientScopes = 0;
  let now = 0;

  for (let index = 0; index < plan.clients; index++) {
    const userId = `user-${index % plan.users}`;
    const clientId = `client-${index}`;
    const topics = new Set<string>();
    const wanted = 1 + randomInt(2);
    while (topics.size < wanted) topics.add(`topic-${randomInt(plan.topics - 1)}`);
    clientScopes += 1 + topics.size;
    const startPoll = () => {
      polls += 1;
      const endPoll = tracker.enter(userId, clientId, [...topics]);
      due[now + randomInt(plan.holdMaxMs)]!.push(() => {
        endPoll();
        for (const topic of topics) lastEnd.set(pairKey(userId, topic), monotonicNow());
        const next = now + randomInt(plan.gapMaxMs);
        if (next < plan.runMs) due[next]!.push(startPoll);
      });
    };
    due[randomInt(plan.gapMaxMs)]!.push(startPoll);
  }

  const steps = new Map((plan.wallSteps ?? []).map((step) => [step.atMs, step.byMs]));
  const startedAt = monotonicNow();
  let stoppedAt = startedAt + plan.runMs;
  for (now = 0; now <= endMs; now++) {
    const step = steps.get(now);
    if (step !== undefined) vi.setSystemTime(Date.now() + step);
    if (now === plan.runMs) stoppedAt = monotonicNow();
    // Same-millisecond re-polls (a gap of 0) are appended while this runs, and run in this tick too.
    const bucket = due[now]!;
    for (let at = 0; at < bucket.length; at++) bucket[at]!();
    await elapse(1);
  }
  return { polls, clientScopes, lastEnd, stoppedAt };
}

interface ChurnVerdict {
  /** (user, topic) pairs polled. */
  pairs: number;
  /** Pairs with a join but not exactly one. */
  repeatedJoins: number;
  /** Leaves reported while the fleet was still polling. */
  leavesDuringRun: number;
  /** A leave then a join of the same pair: what a client re-polling must never see. */
  leaveJoinPairs: number;
  /** Pairs whose leave count after the stop is not exactly one. */
  wrongFinalLeaves: number;
  /** Final leaves before the grace, or later than grace + 2 sweeps, after the pair's last poll end. */
  mistimedLeaves: number;
  /** Events for pairs never polled. */
  strangers: number;
}

function checkChurn(run: ChurnRun, events: readonly SeenEvent[], timing: { graceMs: number; sweepMs: number }): ChurnVerdict {
  const verdict: ChurnVerdict = { pairs: run.lastEnd.size, repeatedJoins: 0, leavesDuringRun: 0, leaveJoinPairs: 0, wrongFinalLeaves: 0, mistimedLeaves: 0, strangers: 0 };
  const byPair = new Map<string, SeenEvent[]>();
  for (const event of events) {
    const key = pairKey(event.user, event.topic);
    if (!run.lastEnd.has(key)) verdict.strangers += 1;
    let list = byPair.get(key);
    if (!list) byPair.set(key, (list = []));
    list.push(event);
  }
  for (const [key, lastEnd] of run.lastEnd) {
    const list = byPair.get(key) ?? [];
    if (list.filter((event) => event.event === 'join').length !== 1) verdict.repeatedJoins += 1;
    for (let index = 1; index < list.length; index++) {
      if (list[index - 1]!.event === 'leave' && list[index]!.event === 'join') verdict.leaveJoinPairs += 1;
    }
    const leaves = list.filter((event) => event.event === 'leave');
    verdict.leavesDuringRun += leaves.filter((event) => event.monotonicAt < run.stoppedAt).length;
    const finalLeaves = leaves.filter((event) => event.monotonicAt >= run.stoppedAt);
    if (finalLeaves.length !== 1) verdict.wrongFinalLeaves += 1;
    for (const leave of finalLeaves) {
      const after = leave.monotonicAt - lastEnd;
      if (after < timing.graceMs || after > timing.graceMs + 2 * timing.sweepMs) verdict.mistimedLeaves += 1;
    }
  }
  return verdict;
}

const cleanVerdict = (pairs: number): ChurnVerdict => ({ pairs, repeatedJoins: 0, leavesDuringRun: 0, leaveJoinPairs: 0, wrongFinalLeaves: 0, mistimedLeaves: 0, strangers: 0 });

const FLEET: ChurnPlan = {
  clients: 200,
  users: 100,
  topics: 20,
  runMs: 60_000,
  afterMs: GRACE_MS + 2 * SWEEP_MS + 100,
  holdMaxMs: 50,
  gapMaxMs: 20,
  seed: 0x5eed,
};

describe('presence tracker', () => {
  describe('re-poll churn', () => {
    it('a minute of re-polling: one join per (user, topic), no leave while polling, one timely leave after the stop, and writes per client, not per poll', async () => {
      const probe = probeRegistry();
      const { tracker, events, errors } = startTracker(probe);

      const run = await runChurn(tracker, FLEET);

      expect(run.polls).toBeGreaterThan(200_000);
      expect(checkChurn(run, events, { graceMs: GRACE_MS, sweepMs: SWEEP_MS })).toEqual(cleanVerdict(run.lastEnd.size));
      expect(eventsOf(events, 'join')).toHaveLength(run.lastEnd.size);
      expect(eventsOf(events, 'leave')).toHaveLength(run.lastEnd.size);
      expect(errors).toEqual([]);
      expect(tracker.localEntries).toBe(0);

      // Each (client, scope) is written once joining and once leaving; the polls themselves write nothing.
      expect(probe.writes.joinEntries).toBe(run.clientScopes);
      expect(probe.writes.leaveEntries).toBe(run.clientScopes);
      expect(probe.writes.announceEntries).toBe(0);
      // Clients start within the first gap, one batch per tick; they stop within one hold, so one or two sweeps.
      expect(probe.writes.joinCalls).toBeLessThanOrEqual(FLEET.gapMaxMs + 1);
      expect(probe.writes.leaveCalls).toBeLessThanOrEqual(2);
      const simulatedMs = FLEET.runMs + FLEET.holdMaxMs + FLEET.afterMs;
      expect(probe.writes.heartbeats).toBeGreaterThanOrEqual(Math.floor(simulatedMs / SWEEP_MS));
      expect(probe.writes.heartbeats).toBeLessThanOrEqual(Math.floor(simulatedMs / SWEEP_MS) + 2);
      const registryCalls = probe.writes.joinCalls + probe.writes.leaveCalls + probe.writes.heartbeats;
      expect(registryCalls * 1_000).toBeLessThan(run.polls);
    });

    it('the churn checker catches a tracker without grace: it flaps, leaving and rejoining while clients keep polling', async () => {
      const probe = probeRegistry();
      const graceMs = 1;
      const { tracker, events } = startTracker(probe, { graceMs });

      const run = await runChurn(tracker, { ...FLEET, runMs: 20_000, afterMs: 2 * SWEEP_MS + 100 });
      const verdict = checkChurn(run, events, { graceMs, sweepMs: SWEEP_MS });

      expect(verdict.leaveJoinPairs).toBeGreaterThan(run.lastEnd.size);
      expect(verdict.leavesDuringRun).toBeGreaterThan(run.lastEnd.size);
      expect(verdict.repeatedJoins).toBeGreaterThan(0);
      expect(verdict).not.toEqual(cleanVerdict(run.lastEnd.size));
      // And what it costs: the registry is written per poll gap, not per client.
      expect(probe.writes.joinEntries).toBeGreaterThan(2 * run.clientScopes);
    });
  });

  describe('one user, several clients', () => {
    it('a user stays online, and in its topics, while one of its two clients is left; the last one leaving is the one leave', async () => {
      const probe = probeRegistry();
      const { tracker, events } = startTracker(probe);
      const endFirst = tracker.enter('alice', 'tab-1', ['room']);
      const endSecond = tracker.enter('alice', 'tab-2', ['room']);
      await settle();
      expect(await clientsOf(tracker, 'alice')).toBe(2);
      expect(eventsOf(events, 'join').map((event) => event.topic)).toEqual(['room']);

      endFirst();
      await elapse(GRACE_MS + 2 * SWEEP_MS);
      expect(await clientsOf(tracker, 'alice')).toBe(1);
      expect(await tracker.topicMembers('room', 10)).toMatchObject({ count: 1, members: [{ userId: 'alice', clients: 1 }] });
      expect(eventsOf(events, 'leave')).toEqual([]);

      endSecond();
      const secondEndedAt = wallNow();
      await elapse(GRACE_MS + SWEEP_MS);
      expect(eventsOf(events, 'leave').map((event) => event.topic)).toEqual(['room']);
      expect((await tracker.users(['alice'])).get('alice')).toEqual({ clients: 0, lastSeenAt: secondEndedAt });
      expect((await tracker.topicMembers('room', 10)).count).toBe(0);
      await elapse(5 * SWEEP_MS);
      expect(events).toHaveLength(2);
    });
  });

  describe('overlapping polls of one client', () => {
    // A client may open its next poll before the last one answered (engine.io tests the same case):
    // the first ending — even reported twice — must not start the grace while the second is held.
    it('the grace starts when the last held poll ends, not the first', async () => {
      const probe = probeRegistry();
      const { tracker, events } = startTracker(probe);
      const endFirst = tracker.enter('alice', 'tab', ['room']);
      const endSecond = tracker.enter('alice', 'tab', ['room']);
      await settle();
      endFirst();
      endFirst();
      await elapse(GRACE_MS + 2 * SWEEP_MS);
      expect(eventsOf(events, 'leave')).toEqual([]);
      expect(await clientsOf(tracker, 'alice')).toBe(1);

      endSecond();
      const secondEndedAt = monotonicNow();
      await elapse(GRACE_MS + SWEEP_MS);
      const leaves = eventsOf(events, 'leave');
      expect(leaves.map((event) => event.topic)).toEqual(['room']);
      expect(leaves[0]!.monotonicAt - secondEndedAt).toBeGreaterThanOrEqual(GRACE_MS);
      expect(probe.writes.joinEntries).toBe(2);
    });
  });

  describe('grace bounds', () => {
    // Where the poll ends relative to the sweeps decides how long after the grace its leave comes.
    it.each([0, 1, SWEEP_MS / 2, SWEEP_MS - 1])('a poll ending %i ms after a sweep: online at grace − 1 ms, gone with one leave by grace + one sweep', async (phaseMs) => {
      const startedAt = monotonicNow();
      const probe = probeRegistry();
      const { tracker, events } = startTracker(probe);
      const endPoll = tracker.enter('alice', 'tab', ['room']);
      await settle();
      await elapse(2 * SWEEP_MS);
      await elapseToSweepPhase(startedAt, phaseMs);

      endPoll();
      const endedAt = monotonicNow();
      const endedAtWall = wallNow();
      await elapse(GRACE_MS - 1);
      expect(eventsOf(events, 'leave')).toEqual([]);
      expect(await clientsOf(tracker, 'alice')).toBe(1);
      expect((await tracker.topicMembers('room', 10)).count).toBe(1);

      await elapse(SWEEP_MS + 1);
      const leaves = eventsOf(events, 'leave');
      expect(leaves.map((event) => event.topic)).toEqual(['room']);
      expect(leaves[0]!.monotonicAt - endedAt).toBeGreaterThanOrEqual(GRACE_MS);
      expect(leaves[0]!.monotonicAt - endedAt).toBeLessThanOrEqual(GRACE_MS + SWEEP_MS);
      expect((await tracker.users(['alice'])).get('alice')).toEqual({ clients: 0, lastSeenAt: endedAtWall });
      expect((await tracker.topicMembers('room', 10)).count).toBe(0);
    });

    it('a re-poll inside the grace changes nothing, even one at grace − 1 ms', async () => {
      const probe = probeRegistry();
      const { tracker, events } = startTracker(probe);
      let endPoll = tracker.enter('alice', 'tab', ['room']);
      await settle();
      const joinsWritten = probe.writes.joinEntries;
      for (let round = 0; round < 4; round++) {
        endPoll();
        await elapse(GRACE_MS - 1);
        endPoll = tracker.enter('alice', 'tab', ['room']);
        await settle();
      }
      endPoll();
      await elapse(GRACE_MS + SWEEP_MS);
      expect(events.map((event) => event.event)).toEqual(['join', 'leave']);
      expect(probe.writes.joinEntries).toBe(joinsWritten);
      expect(probe.writes.leaveEntries).toBe(2);
    });
  });

  describe('clock steps', () => {
    // The wall clock steps an hour each way while the fleet polls, and once more after it stopped:
    // forward would end every grace at once if the grace ran on wall time, backward would hold
    // every client an hour.
    it.each([
      { after: 'forward', byMs: HOUR_MS },
      { after: 'backward', byMs: -HOUR_MS },
    ])('an hour forward and back mid-run, then $after after the stop: no spurious join or leave, leaves still on the grace', async ({ byMs }) => {
      const probe = probeRegistry();
      const { tracker, events, errors } = startTracker(probe);
      const plan: ChurnPlan = {
        ...FLEET,
        clients: 40,
        users: 20,
        topics: 8,
        runMs: 20_000,
        seed: 0xc10c,
        wallSteps: [
          { atMs: 5_000, byMs: HOUR_MS },
          { atMs: 10_000, byMs: -HOUR_MS },
          { atMs: 15_000, byMs: -HOUR_MS },
          { atMs: 16_000, byMs: HOUR_MS },
          { atMs: 20_000 + 2_000, byMs },
        ],
      };

      const run = await runChurn(tracker, plan);

      expect(checkChurn(run, events, { graceMs: GRACE_MS, sweepMs: SWEEP_MS })).toEqual(cleanVerdict(run.lastEnd.size));
      expect(errors).toEqual([]);
      // Wall time still stamps what is reported, steps included.
      for (const event of events) expect(event.at).toBe(event.wallAt);
    });
  });

  describe('registry failures', () => {
    it('a leave the registry refused is retried by later sweeps, stamped with the real end, and leaves no ghost', async () => {
      const probe = probeRegistry();
      const { tracker, events, errors } = startTracker(probe);
      const endPoll = tracker.enter('alice', 'tab', ['room']);
      await settle();
      endPoll();
      const endedAtWall = wallNow();
      probe.failing.leave = true;

      await elapse(GRACE_MS + 3 * SWEEP_MS);
      expect(probe.failedCalls.leave).toBeGreaterThanOrEqual(2);
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(eventsOf(events, 'leave')).toEqual([]);
      // Still in the registry: the write never happened.
      expect(await clientsOf(tracker, 'alice')).toBe(1);

      probe.failing.leave = false;
      await elapse(SWEEP_MS);
      expect(eventsOf(events, 'leave').map((event) => event.topic)).toEqual(['room']);
      expect((await tracker.users(['alice'])).get('alice')).toEqual({ clients: 0, lastSeenAt: endedAtWall });
      expect((await tracker.topicMembers('room', 10)).count).toBe(0);

      await elapse(3 * SWEEP_MS);
      expect(eventsOf(events, 'leave')).toHaveLength(1);
      expect(probe.writes.leaveEntries).toBe(2);
    });

    it('a join the registry refused is announced again once it answers, and its leave still comes', async () => {
      const probe = probeRegistry();
      const { tracker, events, errors } = startTracker(probe);
      probe.failing.join = true;
      const endPoll = tracker.enter('alice', 'tab', ['room']);
      await settle();
      expect(errors).toHaveLength(1);
      expect(await clientsOf(tracker, 'alice')).toBe(0);

      await elapse(3 * SWEEP_MS);
      expect(probe.failedCalls.join).toBeGreaterThanOrEqual(3);
      expect(await clientsOf(tracker, 'alice')).toBe(0);

      probe.failing.join = false;
      await elapse(SWEEP_MS);
      expect(await clientsOf(tracker, 'alice')).toBe(1);
      expect(await tracker.topicMembers('room', 10)).toMatchObject({ count: 1, members: [{ userId: 'alice', clients: 1 }] });
      // Never twice. Whether it is reported at all is left open: the tracker recovers a refused join
      // by re-announcing it, and an announcement reports no change.
      expect(eventsOf(events, 'join').length).toBeLessThanOrEqual(1);

      endPoll();
      await elapse(GRACE_MS + SWEEP_MS);
      expect(eventsOf(events, 'leave').map((event) => event.topic)).toEqual(['room']);
      expect(await clientsOf(tracker, 'alice')).toBe(0);
      expect((await tracker.topicMembers('room', 10)).count).toBe(0);
    });
  });

  describe('a process that dies', () => {
    // Killed just after its heartbeat or just before the next one; its client's poll ended 300 ms
    // before, or was still held when it died.
    it.each([
      { poll: 'ended', killPhaseMs: 1 },
      { poll: 'ended', killPhaseMs: SWEEP_MS - 1 },
      { poll: 'held', killPhaseMs: 1 },
      { poll: 'held', killPhaseMs: SWEEP_MS - 1 },
    ])('poll $poll, killed $killPhaseMs ms after its heartbeat: another process sweeps its user out after its liveness, never before the grace', async ({ poll, killPhaseMs }) => {
      const probe = probeRegistry();
      const startedAt = monotonicNow();
      const a = startTracker(probe, { processId: 'gateway-a' });
      const b = startTracker(probe, { processId: 'gateway-b' });
      const endAlice = a.tracker.enter('alice', 'tab', ['room']);
      b.tracker.enter('carol', 'tab', ['room']); // held on B throughout
      await settle();
      await elapse(GRACE_MS + 2 * SWEEP_MS);
      await elapseToSweepPhase(startedAt, killPhaseMs - (poll === 'ended' ? 300 : 0));
      if (poll === 'ended') {
        endAlice();
        await elapse(300);
      }
      const lastPollEnd = monotonicNow();
      await a.tracker.close();
      const lastBeat = probe.lastHeartbeat.get('gateway-a')!;
      expect(lastPollEnd - lastBeat).toBe(killPhaseMs);
      const livenessEnds = lastBeat + GRACE_MS + SWEEP_MS;

      await elapse(Math.max(lastPollEnd + GRACE_MS, livenessEnds) - 1 - monotonicNow());
      expect(eventsOf(b.events, 'leave')).toEqual([]);
      expect(await clientsOf(b.tracker, 'alice')).toBe(1);

      await elapse(livenessEnds + SWEEP_MS - monotonicNow());
      const leaves = eventsOf(b.events, 'leave');
      expect(leaves.map((event) => `${event.user} ${event.topic}`)).toEqual(['alice room']);
      expect(leaves[0]!.monotonicAt).toBeGreaterThanOrEqual(lastPollEnd + GRACE_MS);
      expect(leaves[0]!.monotonicAt).toBeGreaterThanOrEqual(livenessEnds);
      expect(await clientsOf(b.tracker, 'alice')).toBe(0);
      expect(await b.tracker.topicMembers('room', 10)).toMatchObject({ count: 1, members: [{ userId: 'carol' }] });
      expect(eventsOf(a.events, 'leave', 'alice')).toEqual([]);
    });
  });

  describe('a registry that forgot this process', () => {
    it('the next sweep finds out and announces every standing entry, held or in its grace, without join events', async () => {
      const probe = probeRegistry();
      const startedAt = monotonicNow();
      const { tracker, events } = startTracker(probe);
      tracker.enter('alice', 'tab', ['room', 'lobby']);
      const endBob = tracker.enter('bob', 'tab', ['room']);
      await settle();
      endBob();
      await elapseToSweepPhase(startedAt, 1);
      expect(events.map((event) => event.event)).toEqual(['join', 'join', 'join']);

      probe.replaceTarget(freshRegistry());
      expect(await clientsOf(tracker, 'alice')).toBe(0);

      await elapse(SWEEP_MS);
      expect(probe.writes.announceEntries).toBe(5);
      expect(await clientsOf(tracker, 'alice')).toBe(1);
      expect(await clientsOf(tracker, 'bob')).toBe(1);
      expect((await tracker.topicMembers('room', 10)).count).toBe(2);
      expect((await tracker.topicMembers('lobby', 10)).count).toBe(1);
      expect(events).toHaveLength(3);

      // What was announced leaves as usual: bob's grace ends, alice stays.
      await elapse(GRACE_MS);
      expect(eventsOf(events, 'leave').map((event) => `${event.user} ${event.topic}`)).toEqual(['bob room']);
      expect(await clientsOf(tracker, 'bob')).toBe(0);
      expect(await clientsOf(tracker, 'alice')).toBe(1);
    });

    it('a new client that finds the process forgotten brings the announcement at once, and is itself a join', async () => {
      const probe = probeRegistry();
      const startedAt = monotonicNow();
      const { tracker, events } = startTracker(probe);
      tracker.enter('alice', 'tab', ['room']);
      await settle();
      await elapseToSweepPhase(startedAt, 1);

      probe.replaceTarget(freshRegistry());
      tracker.enter('carol', 'tab', ['room']);
      await settle();
      expect(probe.writes.announceEntries).toBe(2);
      expect(await clientsOf(tracker, 'alice')).toBe(1);
      expect(await clientsOf(tracker, 'carol')).toBe(1);
      expect(events.map((event) => `${event.event} ${event.user}`)).toEqual(['join alice', 'join carol']);
    });
  });
});
