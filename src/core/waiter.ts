/**
 * One held poll's wait state. A wake that arrives while the poll is reading the store is
 * remembered (`woken`), so the read-then-sleep sequence can never sleep through it.
 */
export type WaiterEnd = 'superseded' | 'aborted' | 'draining';

export class Waiter {
  woken = false;
  ended: WaiterEnd | undefined;
  private release: (() => void) | undefined;

  constructor(readonly userId: string) {}

  /** The bus listener: "the mailbox may have changed". */
  readonly wake = (): void => {
    this.woken = true;
    this.release?.();
  };

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
