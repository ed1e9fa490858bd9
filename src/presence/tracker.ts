import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Clock } from '../core/model.js';
import { topicOfScope, topicScope, userScope, type PresenceChange, type PresenceEntry, type PresenceEvent, type PresenceRegistry, type TopicMembers, type UserPresence } from './types.js';

export interface PresenceTrackerOptions {
  /** How long a client stays present after its last poll ended (PRESENCE_GRACE_S); re-polls inside it change nothing. */
  graceMs: number;
  /** How often leaves are looked for and liveness is renewed (default: a third of the grace, at most 1 s). */
  sweepMs?: number;
  /** This process's name in the registry (default: random). */
  processId?: string;
  /** Told of every topic join and leave this process caused or swept (to send them through the bus). */
  onEvents?: (events: PresenceEvent[]) => void;
  /** Background failures (the registry unreachable); never thrown to pollers. */
  onError?: (error: unknown, context: string) => void;
}

export interface PresenceTracker {
  /**
   * A poll of `clientId` (`''`: the user's anonymous client) began, reading `topics`: the client is
   * present for its user and each topic until the grace after the returned function is called.
   */
  enter(userId: string, clientId: string, topics: readonly string[]): () => void;
  users(userIds: readonly string[]): Promise<Map<string, UserPresence>>;
  topicMembers(topic: string, maxListed: number): Promise<TopicMembers>;
  /** Clients present through this process (for tests and metrics). */
  readonly localEntries: number;
  /** Stops the timers; entries stay in the registry until this process's liveness runs out (clients may re-poll elsewhere meanwhile, without a leave). */
  close(): Promise<void>;
}

/** One client in one scope through this process. */
interface LocalEntry extends PresenceEntry {
  /** Polls held now. */
  held: number;
  /** Monotonic ms when the last one ended. */
  lastEnd: number;
}

const keyOf = (entry: PresenceEntry) => `${entry.scope}\n${entry.userId}\n${entry.clientId}`;

/**
 * This process's side of presence. It keeps its clients (one entry per client and scope) and
 * tells the registry only of changes, batched: a client's first poll is a join (written in the
 * tick it came), the end of its grace a leave (written by the sweep). Re-polls write nothing, so
 * a steady fleet costs one heartbeat per process per sweep whatever its poll rate.
 *
 * The grace runs on a monotonic clock: a wall-clock step neither ends it early nor keeps a client
 * forever. Wall time only stamps what is reported (`at`, `since`, `lastSeenAt`).
 *
 * @example
 * const presence = createPresenceTracker({ registry }, { graceMs: 15_000, onEvents: (events) => bus.announcePresence(events) });
 * const done = presence.enter('alice', 'tab-1', ['room:42']);
 * // … when the poll ends:
 * done();
 */
export function createPresenceTracker(
  dependencies: { registry: PresenceRegistry; clock?: Clock; monotonic?: () => number },
  options: PresenceTrackerOptions,
): PresenceTracker {
  const { registry } = dependencies;
  const wallClock = dependencies.clock ?? { now: () => Date.now() };
  const monotonic = dependencies.monotonic ?? (() => performance.now());
  const { graceMs } = options;
  if (!(Number.isFinite(graceMs) && graceMs > 0)) throw new TypeError('Expected `graceMs` to be a positive number');
  const sweepMs = options.sweepMs ?? Math.min(1_000, graceMs / 3);
  const processId = options.processId ?? randomUUID();
  const onEvents = options.onEvents ?? (() => {});
  const onError = options.onError ?? (() => {});
  // A process is dead once it missed its heartbeats for the grace: its clients' polls ended no
  // later than its last heartbeat, so their leave never comes before the grace.
  const livenessMs = graceMs + sweepMs;

  const entries = new Map<string, LocalEntry>();
  /** Entries with no poll held: the sweep looks only at these. */
  const idle = new Set<LocalEntry>();
  /** Entries not yet written; one that leaves before it is written is simply dropped from here. */
  const pendingJoins = new Set<LocalEntry>();
  /** Entries whose join failed and may yet have been written: one that leaves is left in the registry too. */
  const uncertain = new Set<LocalEntry>();
  let pendingLeaves: Array<LocalEntry & { lastSeenAt: number }> = [];
  let flushing: Promise<void> | undefined;
  let flushAgain = false;
  let flushScheduled = false;
  /** Set when the registry forgot this process (or may have): everything is announced again. */
  let reannounce = true;
  /** Liveness is renewed in the next batch (each sweep asks for it). */
  let beatDue = true;
  let closed = false;

  function report(changes: readonly PresenceChange[]): void {
    const events: PresenceEvent[] = [];
    for (const change of changes) {
      const topic = topicOfScope(change.scope);
      if (topic !== undefined) events.push({ topic, user: change.userId, event: change.event, at: change.at });
    }
    if (events.length > 0) onEvents(events);
  }

  /**
   * One batch, in order: liveness when due (it also sweeps dead processes); if the registry forgot
   * this process (first start, declared dead, Redis restarted), every standing entry (as no
   * change); then the leaves; then the joins. What fails is kept for the next batch: a lost leave
   * would leave a ghost for as long as this process lives.
   */
  async function flushOnce(): Promise<void> {
    if (beatDue || reannounce) {
      beatDue = false;
      const beat = await registry.heartbeat(processId, livenessMs);
      report(beat.changes);
      if (!beat.known) reannounce = true;
    }
    if (reannounce) {
      const standing = [...entries.values()].filter((entry) => !pendingJoins.has(entry));
      if (standing.length > 0 && !(await registry.join(processId, standing, wallClock.now(), { announce: true })).known) return;
      reannounce = false;
    }
    const leaves = pendingLeaves;
    pendingLeaves = [];
    try {
      if (leaves.length > 0) report(await registry.leave(processId, leaves, wallClock.now()));
    } catch (error) {
      pendingLeaves = leaves.concat(pendingLeaves);
      throw error;
    }
    const joins = [...pendingJoins];
    pendingJoins.clear();
    if (joins.length === 0) return;
    const joined = await registry.join(processId, joins, wallClock.now()).catch((error: unknown) => {
      // Tried again with the next batch, as joins (their events are not lost). The write may have
      // gone through: an entry that leaves before the retry is left in the registry too.
      for (const entry of joins) {
        uncertain.add(entry);
        // One swept meanwhile already has its leave queued.
        if (entries.get(keyOf(entry)) === entry) pendingJoins.add(entry);
      }
      throw error;
    });
    for (const entry of joins) uncertain.delete(entry);
    if (joined.known) report(joined.changes);
    else {
      reannounce = true;
      for (const entry of joins) if (entries.get(keyOf(entry)) === entry) pendingJoins.add(entry);
    }
  }

  function flush(): void {
    if (closed) return;
    if (flushing) {
      flushAgain = true;
      return;
    }
    flushing = (async () => {
      // Bounded: a registry that keeps forgetting this process is retried by the next sweep.
      for (let round = 0; round < 3; round++) {
        flushAgain = false;
        try {
          await flushOnce();
        } catch (error) {
          onError(error, 'presence');
          return;
        }
        if (!flushAgain && !reannounce && !beatDue && pendingJoins.size === 0 && pendingLeaves.length === 0) return;
      }
    })().finally(() => {
      flushing = undefined;
    });
  }

  function scheduleFlush(): void {
    if (flushScheduled) return;
    flushScheduled = true;
    // One batch for all the polls of this tick.
    setImmediate(() => {
      flushScheduled = false;
      flush();
    });
  }

  function sweep(): void {
    const now = monotonic();
    const wallNow = wallClock.now();
    for (const entry of idle) {
      if (now - entry.lastEnd < graceMs) continue;
      idle.delete(entry);
      entries.delete(keyOf(entry));
      if (!pendingJoins.delete(entry) || uncertain.delete(entry)) pendingLeaves.push({ ...entry, lastSeenAt: wallNow - (now - entry.lastEnd) });
    }
    beatDue = true;
    flush();
  }

  const timer = setInterval(sweep, sweepMs);
  timer.unref();
  // On the books before the first join (a join from a process the registry does not know writes nothing).
  scheduleFlush();

  function enterScope(userId: string, clientId: string, scope: PresenceEntry['scope']): LocalEntry {
    const key = `${scope}\n${userId}\n${clientId}`;
    let entry = entries.get(key);
    if (entry) idle.delete(entry);
    else {
      entry = { scope, userId, clientId, held: 0, lastEnd: 0 };
      entries.set(key, entry);
      pendingJoins.add(entry);
      scheduleFlush();
    }
    entry.held += 1;
    return entry;
  }

  return {
    enter(userId, clientId, topics) {
      const held = [enterScope(userId, clientId, userScope(userId))];
      for (const topic of topics) held.push(enterScope(userId, clientId, topicScope(topic)));
      let exited = false;
      return () => {
        if (exited) return;
        exited = true;
        const now = monotonic();
        for (const entry of held) {
          entry.held -= 1;
          entry.lastEnd = now;
          if (entry.held === 0) idle.add(entry);
        }
      };
    },
    users: (userIds) => registry.users(userIds),
    topicMembers: (topic, maxListed) => registry.topicMembers(topic, maxListed),
    get localEntries() {
      return entries.size;
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await flushing;
    },
  };
}
