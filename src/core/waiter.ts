/**
 * One held poll's wait state. A wake that arrives while the poll is reading the store is
 * remembered (`woken`), so the read-then-sleep sequence can never sleep through it.
 */
import type { PresenceEvent } from '../presence/types.js';
import type { StoredMessage } from './model.js';

export type WaiterEnd = 'superseded' | 'aborted' | 'draining';

export class Waiter {
  woken = false;
  ended: WaiterEnd | undefined;
  private release: (() => void) | undefined;
  /** Committed messages this process stored for the user while the poll waited. */
  private offered: StoredMessage[] | undefined;

  /** Presence events heard for the poll's `presence` topics while it waited. */
  private presence: PresenceEvent[] | undefined;

  /** `presenceTopics`: the topics whose joins and leaves this poll is answered with. */
  constructor(
    readonly userId: string,
    readonly presenceTopics?: ReadonlySet<string>,
  ) {}

  /** The bus listener: "the mailbox may have changed". */
  readonly wake = (): void => {
    this.woken = true;
    this.release?.();
  };

  /** Hands over messages this process just committed for the user, and wakes the poll. */
  offer(messages: readonly StoredMessage[]): void {
    (this.offered ??= []).push(...messages);
    this.wake();
  }

  /**
   * The offered messages that continue `cursor` without a gap, at most `limit`: exactly what a
   * store read would start its answer with, so the poll can answer without one. Undefined when
   * they do not continue the cursor (a publish of another process came first, a gap): then only
   * the store knows the answer.
   */
  takeOffered(cursor: number, limit: number, now: number): StoredMessage[] | undefined {
    if (!this.offered) return undefined;
    // An expired message is never delivered: leaving it out makes a gap, and a gap reads the store.
    const offered = this.offered.filter((message) => message.seq > cursor && (message.expiresAt === null || message.expiresAt > now)).sort((a, b) => a.seq - b.seq);
    this.offered = undefined;
    const run: StoredMessage[] = [];
    for (const message of offered) {
      if (run.length >= limit || message.seq !== (run.at(-1)?.seq ?? cursor) + 1) break;
      run.push(message);
    }
    return run.length > 0 ? run : undefined;
  }

  /** Hands over a join or leave of one of its presence topics, and wakes the poll. */
  offerPresence(event: PresenceEvent): void {
    (this.presence ??= []).push(event);
    this.wake();
  }

  takePresence(): PresenceEvent[] | undefined {
    const events = this.presence;
    this.presence = undefined;
    return events;
  }

  end(reason: WaiterEnd): void {
    this.ended ??= reason;
    this.release?.();
  }

  /**
   * Resolves on a wake (including one that already happened), an end, or after `timeoutMs`.
   * Exactly one timer per sleep, always cleared: thousands of held polls must not leak timers.
   */
  sleep(timeoutMs: number): Promise<void> {
    if (this.woken || this.ended) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.release = undefined;
        resolve();
      }
      this.release = done;
    });
  }
}
