import { ListenerRegistry } from './listener-registry.js';
import type { Bus, Unsubscribe, WakeListener } from './types.js';

/**
 * In-process bus: the embedded default when no REDIS_URL is set. One process only.
 *
 * @example
 * const bus = createMemoryBus();
 * const unsubscribe = await bus.subscribe('bob', () => console.log('look again'));
 * await bus.wake(['bob']);
 */
export function createMemoryBus(): Bus {
  const registry = new ListenerRegistry();
  let closed = false;
  return {
    async subscribe(userId: string, listener: WakeListener): Promise<Unsubscribe> {
      return registry.add(userId, listener);
    },
    async wake(userIds, heads) {
      if (closed) throw new Error('bus is closed');
      // Deferred so a publisher never runs poll code on its own stack.
      queueMicrotask(() => {
        for (const userId of userIds) registry.notify(userId, heads?.get(userId));
      });
    },
    onWake(observer) {
      return registry.observe(observer);
    },
    onResync() {
      return () => {};
    },
    get healthy() {
      return !closed;
    },
    get subscribedUsers() {
      return registry.userCount;
    },
    async ping() {
      if (closed) throw new Error('bus is closed');
    },
    async close() {
      closed = true;
    },
  };
}
