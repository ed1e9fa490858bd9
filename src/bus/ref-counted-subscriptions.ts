import type { ListenerRegistry } from './listener-registry.js';
import type { Unsubscribe, WakeListener } from './types.js';

export interface ChannelCommands {
  /** SUBSCRIBE / SSUBSCRIBE of one user's channel. */
  subscribe(userId: string): Promise<unknown>;
  /** UNSUBSCRIBE / SUNSUBSCRIBE of one user's channel. */
  unsubscribe(userId: string): Promise<unknown>;
  /** True when a subscribe sent now is answered promptly (connected, not re-subscribing). */
  canAwaitSubscribe(): boolean;
  isClosed(): boolean;
  reportError(error: unknown): void;
}

/**
 * The subscribe side shared by the Redis buses: one channel subscription per user however many
 * listeners, subscribed on the first and unsubscribed after the last.
 *
 * Commands for one channel go over one connection and run there in order, so SUBSCRIBE →
 * UNSUBSCRIBE → SUBSCRIBE for the same user ends subscribed. Later listeners await the first
 * one's SUBSCRIBE, which makes "resolved" mean "the server has the subscription" for everyone.
 */
export function createRefCountedSubscriptions(
  registry: ListenerRegistry,
  commands: ChannelCommands,
): (userId: string, listener: WakeListener) => Promise<Unsubscribe> {
  const subscriptionByUser = new Map<string, Promise<void>>();

  return async function subscribe(userId, listener) {
    const { first } = registry.add(userId, listener);
    let active = true;
    const unsubscribe = () => {
      if (!active) return;
      active = false;
      if (registry.remove(userId, listener).last && !commands.isClosed()) {
        subscriptionByUser.delete(userId);
        commands.unsubscribe(userId).catch(commands.reportError);
      }
    };
    let subscribed = subscriptionByUser.get(userId);
    if (first || !subscribed) {
      subscribed = commands.subscribe(userId).then(
        () => undefined,
        (error: unknown) => commands.reportError(error),
      );
      subscriptionByUser.set(userId, subscribed);
    }
    // While Redis is unreachable don't hold the poll hostage: the engine falls back to timed
    // re-reads, and the subscription is made again once Redis is back.
    if (commands.canAwaitSubscribe()) await subscribed;
    return unsubscribe;
  };
}
