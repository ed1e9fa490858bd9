/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A controller that aborts when any parent aborts, or after `timeoutMs`. Written out instead of
 * `AbortSignal.any` / `AbortSignal.timeout` so that the client also runs on older browsers and on
 * runtimes where those are missing. Call `dispose()` to detach from the parents once done.
 */
export function linkedController(parents: ReadonlyArray<AbortSignal | undefined>, timeout?: { ms: number; reason: () => unknown }) {
  const controller = new AbortController();
  const detachers: Array<() => void> = [];
  for (const parent of parents) {
    if (!parent) continue;
    if (parent.aborted) {
      controller.abort(parent.reason);
      break;
    }
    const onAbort = () => controller.abort(parent.reason);
    parent.addEventListener('abort', onAbort, { once: true });
    detachers.push(() => parent.removeEventListener('abort', onAbort));
  }
  if (timeout && !controller.signal.aborted) {
    const timer = setTimeout(() => controller.abort(timeout.reason()), timeout.ms);
    detachers.push(() => clearTimeout(timer));
  }
  return {
    signal: controller.signal,
    dispose() {
      for (const detach of detachers.splice(0)) detach();
    },
  };
}
