/**
 * Presence: who is online, known from the polls themselves. A **client** is one poller instance
 * (the `client` a poll names; a poll without one is its user's anonymous client). A client is
 * present in a **scope** — its user (online) and each topic its polls read (a member) — while it
 * holds a poll there, and for the grace after its last one ended.
 *
 * Each process tracks its own clients (tracker.ts) and tells a registry only what changes: a
 * client's first poll in a scope (a join) and the end of its grace (a leave). Re-polls inside the
 * grace write nothing. The registry (in process, or Redis shared by every process) keeps the
 * entries of every process and the processes' liveness, so a process that dies takes its entries
 * with it one sweep after its liveness ran out.
 */

/** A scope a client is present in: a user (`u:<id>`) or a topic (`t:<name>`). */
export type PresenceScope = `u:${string}` | `t:${string}`;

export function userScope(userId: string): PresenceScope {
  return `u:${userId}`;
}

export function topicScope(name: string): PresenceScope {
  return `t:${name}`;
}

/** The topic a scope names, or undefined for a user's scope. */
export function topicOfScope(scope: PresenceScope): string | undefined {
  return scope.startsWith('t:') ? scope.slice(2) : undefined;
}

/** One client of one user, present in one scope through this process. */
export interface PresenceEntry {
  scope: PresenceScope;
  userId: string;
  /** `''` for a user's anonymous client. */
  clientId: string;
}

/** A user became present in a scope (its first client joined) or left it (its last client left). */
export interface PresenceChange {
  scope: PresenceScope;
  userId: string;
  event: 'join' | 'leave';
  /** Epoch milliseconds. */
  at: number;
}

/** A join or leave in a topic, as polls with `presence=1` receive it. */
export interface PresenceEvent {
  topic: string;
  user: string;
  event: 'join' | 'leave';
  /** Epoch milliseconds. */
  at: number;
}

export interface UserPresence {
  /** Distinct live clients; 0 = offline. */
  clients: number;
  /** When an offline user was last seen (its last client left: the end of its last poll), epoch ms; null when never. */
  lastSeenAt: number | null;
}

export interface TopicMember {
  userId: string;
  clients: number;
  /** When the user joined the topic (its first client still there), epoch ms. */
  since: number;
}

export interface TopicMembers {
  /** Users present in the topic. */
  count: number;
  /** Listed only when `count` is at most the asked maximum. */
  members?: TopicMember[];
}

/** The result of a process's heartbeat. */
export interface Heartbeat {
  /**
   * False when the registry did not know this process (it was declared dead, or the registry lost
   * its data, e.g. a Redis restart): its entries are gone there, and the process announces them again.
   */
  known: boolean;
  /** Users that left a scope because a dead process's entries were removed by this sweep. */
  changes: PresenceChange[];
}

/**
 * Where the presence of every process meets. All methods are batched by their callers (one call
 * per tick or sweep), and each is one round trip for the Redis registry.
 */
export interface PresenceRegistry {
  /**
   * Adds this process's entries (an entry already there is left as it is) and answers the users
   * that became present in a scope. `announce` marks a re-announcement after a lost registry:
   * the entries are written again but answered as no change. A process the registry does not
   * know (declared dead, or the registry lost its data) writes nothing and is told so
   * (`known: false`): it must heartbeat, then announce everything it holds. Entries are never
   * written for a process without liveness, which nobody could sweep if it died.
   */
  join(processId: string, entries: readonly PresenceEntry[], at: number, options?: { announce?: boolean }): Promise<{ known: boolean; changes: PresenceChange[] }>;
  /** Removes this process's entries; answers the users that left a scope (no client of theirs left in it). `lastSeenAt` is recorded for users that went offline. */
  leave(processId: string, entries: ReadonlyArray<PresenceEntry & { lastSeenAt: number }>, at: number): Promise<PresenceChange[]>;
  /**
   * Marks this process alive for `ttlMs` more (measured on the registry's own clock, so processes
   * whose clocks disagree or step agree on who is dead), and removes the entries of processes whose
   * liveness ran out.
   */
  heartbeat(processId: string, ttlMs: number): Promise<Heartbeat>;
  /** The presence of each user (one round trip). */
  users(userIds: readonly string[]): Promise<Map<string, UserPresence>>;
  /** The users present in a topic; members listed only when there are at most `maxListed`. */
  topicMembers(topic: string, maxListed: number): Promise<TopicMembers>;
  close(): Promise<void>;
}
