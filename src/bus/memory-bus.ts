import { PresenceListeners } from './presence-listeners.js';
import { WakeObservers } from './wake-observers.js';
import type { Bus } from './types.js';

/**
 * In-process bus: the embedded default when no REDIS_URL is set. One process only.
 *
 * @example
 * const bus = createMemoryBus();
 * const stopObserving = bus.onWake((userId) => console.log(`look again at ${userId}'s mailbox`));
 * await bus.wake(['bob']);
 */
export function createMemoryBus(): Bus {
  const observers = new WakeObservers();
  const presence = new PresenceListeners();
  let closed = false;
  return {
    async wake(userIds, heads) {
      if (closed) throw new Error('bus is closed');
      // Deferred so a publisher never runs poll code on its own stack.
      queueMicrotask(() => {
        for (const userId of userIds) observers.notify(userId, heads?.get(userId));
      });
    },
    onWake(observer) {
      return observers.observe(observer);
    },
    async announcePresence(events) {
      if (closed) throw new Error('bus is closed');
      queueMicrotask(() => presence.notify(events));
    },
    onPresence(listener) {
      return presence.listen(listener);
    },
    onResync() {
      return () => {};
    },
    get healthy() {
      return !closed;
    },
    async ping() {
      if (closed) throw new Error('bus is closed');
    },
    async close() {
      closed = true;
    },
  };
}
