import type { WakeListener } from './types.js';

/**
 * Per-user listener sets with reference counting: `add` reports when a user gains its first
 * listener (subscribe the channel) and `remove` when it loses its last (unsubscribe).
 */
export class ListenerRegistry {
  private readonly listenersByUser = new Map<string, Set<WakeListener>>();

  add(userId: string, listener: WakeListener): { first: boolean } {
    let listeners = this.listenersByUser.get(userId);
    const first = listeners === undefined;
    if (!listeners) {
      listeners = new Set();
      this.listenersByUser.set(userId, listeners);
    }
    listeners.add(listener);
    return { first };
  }

  remove(userId: string, listener: WakeListener): { last: boolean } {
    const listeners = this.listenersByUser.get(userId);
    if (!listeners || !listeners.delete(listener)) return { last: false };
    if (listeners.size > 0) return { last: false };
    this.listenersByUser.delete(userId);
    return { last: true };
  }

  notify(userId: string): void {
    const listeners = this.listenersByUser.get(userId);
    if (!listeners) return;
    // Copy: a listener may unsubscribe itself while being notified.
    for (const listener of [...listeners]) listener();
  }

  notifyAll(): void {
    for (const userId of [...this.listenersByUser.keys()]) this.notify(userId);
  }

  get userCount(): number {
    return this.listenersByUser.size;
  }

  users(): IterableIterator<string> {
    return this.listenersByUser.keys();
  }
}
