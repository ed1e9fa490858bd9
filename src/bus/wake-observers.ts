import type { Unsubscribe, WakeObserver } from './types.js';

/**
 * The wake observers of one process. Every bus notifies through here: the Redis buses receive the
 * wakes of whole shards and tell each observer the user and head of every wake; the engine (one
 * observer for all its held polls) finds the polls of that user itself.
 */
export class WakeObservers {
  private readonly observers = new Set<WakeObserver>();

  /** Adds an observer of every wake; the returned function removes it and is safe to call twice. */
  observe(observer: WakeObserver): Unsubscribe {
    this.observers.add(observer);
    return () => {
      this.observers.delete(observer);
    };
  }

  notify(userId: string, head?: number): void {
    for (const observer of this.observers) observer(userId, head);
  }
}
