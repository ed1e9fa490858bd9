import { performance } from 'node:perf_hooks';
import type { Heartbeat, PresenceChange, PresenceEntry, PresenceRegistry, PresenceScope, TopicMembers, UserPresence } from './types.js';
import { topicScope, userScope } from './types.js';

/**
 * The embedded default: presence kept in this process. Several trackers may share one (tests, a
 * host with two gateways), each as its own process, with the same liveness rules as Redis.
 *
 * @example
 * const registry = createMemoryPresenceRegistry();
 */
export function createMemoryPresenceRegistry(options: { now?: () => number; wallClock?: () => number } = {}): PresenceRegistry {
  // Liveness runs on a monotonic clock, so a wall-clock step never declares a process dead.
  const now = options.now ?? (() => performance.now());
  const wallClock = options.wallClock ?? (() => Date.now());
  /** Process → when its liveness runs out and when it last said it was alive. */
  const processes = new Map<string, { expiresAt: number; lastBeat: number }>();
  /** Scope → user → entry (`client\nprocess`) → since. */
  const scopes = new Map<PresenceScope, Map<string, Map<string, number>>>();
  /** Process → its entries, to remove them when it dies. */
  const entriesOf = new Map<string, Map<string, PresenceEntry>>();
  const lastSeen = new Map<string, number>();

  const entryKey = (entry: PresenceEntry, processId: string) => `${entry.clientId}\n${processId}`;
  const processEntryKey = (entry: PresenceEntry) => `${entry.scope}\n${entry.userId}\n${entry.clientId}`;

  function add(processId: string, entry: PresenceEntry, at: number): boolean {
    let users = scopes.get(entry.scope);
    if (!users) scopes.set(entry.scope, (users = new Map()));
    let entries = users.get(entry.userId);
    const joined = entries === undefined;
    if (!entries) users.set(entry.userId, (entries = new Map()));
    const key = entryKey(entry, processId);
    if (entries.has(key)) return false;
    entries.set(key, at);
    let own = entriesOf.get(processId);
    if (!own) entriesOf.set(processId, (own = new Map()));
    own.set(processEntryKey(entry), entry);
    return joined;
  }

  function remove(processId: string, entry: PresenceEntry, lastSeenAt: number): boolean {
    entriesOf.get(processId)?.delete(processEntryKey(entry));
    const users = scopes.get(entry.scope);
    const entries = users?.get(entry.userId);
    if (!entries?.delete(entryKey(entry, processId))) return false;
    // Every entry's end counts, not only the last one removed: processes sweep on their own
    // timers, so the client seen last may well be removed before another one.
    if (entry.scope === userScope(entry.userId)) lastSeen.set(entry.userId, Math.max(lastSeenAt, lastSeen.get(entry.userId) ?? 0));
    if (entries.size > 0) return false;
    users!.delete(entry.userId);
    if (users!.size === 0) scopes.delete(entry.scope);
    return true;
  }

  function sweepDead(): PresenceChange[] {
    const changes: PresenceChange[] = [];
    const at = wallClock();
    for (const [processId, liveness] of processes) {
      if (liveness.expiresAt > now()) continue;
      processes.delete(processId);
      // Last seen when it last said it was alive: its clients may have polled until then.
      const lastSeenAt = at - (now() - liveness.lastBeat);
      for (const entry of entriesOf.get(processId)?.values() ?? []) {
        if (remove(processId, entry, lastSeenAt)) changes.push({ scope: entry.scope, userId: entry.userId, event: 'leave', at });
      }
      entriesOf.delete(processId);
    }
    return changes;
  }

  return {
    async join(processId, entries, at, joinOptions = {}) {
      if (!processes.has(processId)) return { known: false, changes: [] };
      const changes: PresenceChange[] = [];
      for (const entry of entries) {
        if (add(processId, entry, at) && !joinOptions.announce) changes.push({ scope: entry.scope, userId: entry.userId, event: 'join', at });
      }
      return { known: true, changes };
    },
    async leave(processId, entries, at) {
      const changes: PresenceChange[] = [];
      for (const entry of entries) {
        if (remove(processId, entry, entry.lastSeenAt)) changes.push({ scope: entry.scope, userId: entry.userId, event: 'leave', at });
      }
      return changes;
    },
    async heartbeat(processId, ttlMs): Promise<Heartbeat> {
      const wasKnown = processes.has(processId);
      processes.set(processId, { expiresAt: now() + ttlMs, lastBeat: now() });
      return { known: wasKnown, changes: sweepDead() };
    },
    async users(userIds) {
      const answer = new Map<string, UserPresence>();
      for (const userId of userIds) {
        const entries = scopes.get(userScope(userId))?.get(userId);
        const clients = new Set([...(entries?.keys() ?? [])].map((key) => key.slice(0, key.indexOf('\n'))));
        answer.set(userId, { clients: clients.size, lastSeenAt: lastSeen.get(userId) ?? null });
      }
      return answer;
    },
    async topicMembers(topic, maxListed): Promise<TopicMembers> {
      const users = scopes.get(topicScope(topic));
      const count = users?.size ?? 0;
      if (count > maxListed) return { count };
      // A topic nobody is in lists nobody (0 is within any maximum), as the Redis registry answers.
      if (!users) return { count, members: [] };
      const members = [...users].map(([userId, entries]) => ({
        userId,
        clients: new Set([...entries.keys()].map((key) => key.slice(0, key.indexOf('\n')))).size,
        since: Math.min(...entries.values()),
      }));
      return { count, members: members.sort((a, b) => a.since - b.since || (a.userId < b.userId ? -1 : 1)) };
    },
    async close() {},
  };
}
