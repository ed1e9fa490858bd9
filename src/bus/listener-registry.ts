import type { Unsubscribe, WakeListener } from './types.js';

/**
 * Per-user listener sets of one process. Every bus filters wakes here: the Redis buses receive
 * the wakes of a whole shard and notify only the users that have listeners in this process.
 */
export class ListenerRegistry {
  private readonly listenersByUser = new Map<string, Set<WakeListener>>();

  /** Adds a listener; the returned function removes it and is safe to call more than once. */
  add(userId: string, listener: WakeListener): Unsubscribe {
    let listeners = this.listenersByUser.get(userId);
    if (!listeners) {
      listeners = new Set();
      this.listenersByUser.set(userId, listeners);
    }
    listeners.add(listener);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      this.remove(userId, listener);
    };
  }

  /** A user without listeners here costs one Map lookup: most users of a shard live elsewhere. */
  notify(userId: string): void {
    const listeners = this.listenersByUser.get(userId);
    if (!listeners) return;
    // Copy: a listener may unsubscribe itself while being notified.
    for (const listener of [...listeners]) listener();
  }

  /** Users with at least one listener. */
  get userCount(): number {
    return this.listenersByUser.size;
  }

  private remove(userId: string, listener: WakeListener): void {
    const listeners = this.listenersByUser.get(userId);
    if (!listeners?.delete(listener) || listeners.size > 0) return;
    this.listenersByUser.delete(userId);
  }
}
