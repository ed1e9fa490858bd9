/**
 * What a start sequence has opened so far, to close newest first when a later step fails: a
 * gateway that cannot listen must not leave its database pool, Redis connections or timers behind
 * in a process that goes on running (a test runner, a host application retrying).
 *
 * @example
 * const opened = createOpenedResources();
 * const store = await selectStore(config.store);
 * opened.add(() => store.close());
 * try { await listen(); } catch (error) { await opened.closeAll(); throw error; }
 */
export interface OpenedResources {
  add(close: () => Promise<void> | void): void;
  /** Closes everything added, newest first; a close that fails is reported and the rest still run. */
  closeAll(): Promise<void>;
}

export function createOpenedResources(options: { onCloseError?: (error: unknown) => void } = {}): OpenedResources {
  const closers: Array<() => Promise<void> | void> = [];
  return {
    add(close) {
      closers.push(close);
    },
    async closeAll() {
      while (closers.length > 0) {
        const close = closers.pop()!;
        try {
          await close();
        } catch (error) {
          options.onCloseError?.(error);
        }
      }
    },
  };
}
