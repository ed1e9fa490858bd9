import type { Unsubscribe, WakeListener, WakeObserver } from './types.js';

/**
 * Per-user listener sets of one process. Every bus filters wakes here: the Redis buses receive
 * the wakes of a whole shard and notify only the users that have listeners in this process.
 */
export class ListenerRegistry {
  private readonly listenersByUser = new Map<string, Set<WakeListener>>();
  private readonly observers = new Set<WakeObserver>();

  /** Adds an observer of every wake, whoever it is for. */
  observe(observer: WakeObserver): Unsubscribe {
    this.observers.add(observer);
    return () => {
      this.observers.delete(observer);
    };
  }

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

  /**
   * Observers first (they learn the mailbox head before any listener acts on the wake); then the
   * user's listeners. A user without listeners here costs one Map lookup: most users of a shard
   * live elsewhere.
   */
  notify(userId: string, head?: number): void {
    for (const observer of this.observers) observer(userId, head);
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
