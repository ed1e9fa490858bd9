import type { PresenceEvent } from '../presence/types.js';
import type { PresenceListener, Unsubscribe } from './types.js';

/**
 * The presence listeners of one process, and the one wire format of presence events on a Redis
 * channel: a JSON array of `{topic, user, event, at}`.
 */
export class PresenceListeners {
  private readonly listeners = new Set<PresenceListener>();

  listen(listener: PresenceListener): Unsubscribe {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  notify(events: readonly PresenceEvent[]): void {
    for (const listener of this.listeners) listener(events);
  }

  /** A payload from the channel; one that is not an array of events (another version, a stray PUBLISH) is dropped. */
  notifyPayload(payload: string): void {
    let events: unknown;
    try {
      events = JSON.parse(payload);
    } catch {
      return;
    }
    if (!Array.isArray(events)) return;
    const valid = events.filter(
      (event): event is PresenceEvent =>
        typeof event === 'object' && event !== null && typeof event.topic === 'string' && typeof event.user === 'string' && (event.event === 'join' || event.event === 'leave') && typeof event.at === 'number',
    );
    if (valid.length > 0) this.notify(valid);
  }
}

export function presencePayload(events: readonly PresenceEvent[]): string {
  return JSON.stringify(events.map(({ topic, user, event, at }) => ({ topic, user, event, at })));
}
