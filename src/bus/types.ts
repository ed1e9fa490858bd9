import type { PresenceEvent } from '../presence/types.js';

/**
 * The wake-up signal between processes. It carries no message data: a wake means "this user's
 * mailbox may have changed, read the store again". Losing a wake delays delivery (the held poll
 * re-reads on its timeout or on the bus's `resync`), it never loses a message.
 */
export type Unsubscribe = () => void;
/**
 * Told of every wake the process hears, for every user.
 * `head` is the highest mailbox sequence number the waking publish committed, when it said.
 */
export type WakeObserver = (userId: string, head: number | undefined) => void;

/** Told of presence joins and leaves of topics, from any process. */
export type PresenceListener = (events: readonly PresenceEvent[]) => void;

export interface Bus {
  /**
   * Best effort: rejects when the bus is unreachable (the message is already stored). `heads`
   * gives, per user, the highest mailbox sequence number just committed: every process learns
   * what is new in that mailbox without asking the store.
   */
  wake(userIds: readonly string[], heads?: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Registers a WakeObserver. Costs no Redis command: the Redis buses subscribe their fixed set of
   * shard channels once, when created, so a wake published after this returns is seen while the
   * bus is healthy.
   */
  onWake(observer: WakeObserver): Unsubscribe;
  /**
   * Called after the bus (re)connects: wakes published while it was away are lost, so every
   * listener should re-read the store.
   */
  onResync(listener: () => void): Unsubscribe;
  /**
   * Sends topic presence events to every process (ephemeral, best effort: a poll that misses one
   * resyncs with GET /v1/topics/{name}/presence). Optional for a bus written before presence:
   * without it, events reach the polls of the process that saw the change only.
   */
  announcePresence?(events: readonly PresenceEvent[]): Promise<void>;
  /** Registers a PresenceListener (no Redis command: the presence channel is subscribed with the wake shards). */
  onPresence?(listener: PresenceListener): Unsubscribe;
  /** False while the bus cannot deliver wakes; the engine then re-reads the store on a timer. */
  readonly healthy: boolean;
  ping(): Promise<void>;
  close(): Promise<void>;
}
