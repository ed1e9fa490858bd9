export interface TickBatcherOptions {
  /** Most items handed to one `runBatch` call. */
  maxBatch?: number;
  /**
   * Most `runBatch` calls running at once. While that many run, new items wait and join the next
   * batch: under load batches grow instead of queueing many small statements on the pool.
   */
  maxInFlight?: number;
  /**
   * Collect for this long after the first queued item instead of one event-loop turn: for work
   * nobody waits on (acks), where a bigger batch is worth a few milliseconds.
   */
  windowMs?: number;
}

export interface TickBatcher<Item, Result> {
  (item: Item): Promise<Result>;
  /** Runs what is queued now and resolves once nothing is queued or running (for shutdown). */
  settle(): Promise<void>;
}

/**
 * Coalesces the calls made in one event-loop turn into one `runBatch(items)` call, so a tick's
 * worth of polls or publishes costs one statement instead of one each. `runBatch` settles each
 * item on its own (a bad publish must not fail the others in its batch); if it throws, every item
 * of the batch fails with that error.
 */
export function createTickBatcher<Item, Result>(
  runBatch: (items: Item[]) => Promise<Array<PromiseSettledResult<Result>>>,
  options: TickBatcherOptions = {},
): TickBatcher<Item, Result> {
  const maxBatch = options.maxBatch ?? 500;
  const windowMs = options.windowMs ?? 0;
  const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new TypeError('Expected `maxBatch` to be a positive integer');
  if (!(maxInFlight >= 1)) throw new TypeError('Expected `maxInFlight` to be at least 1');

  interface Queued {
    item: Item;
    resolve: (result: Result) => void;
    reject: (error: unknown) => void;
  }
  let queue: Queued[] = [];
  let scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  let inFlight = 0;
  const running = new Set<Promise<unknown>>();

  function schedule(): void {
    if (scheduled || queue.length === 0 || inFlight >= maxInFlight) return;
    scheduled = windowMs > 0 ? setTimeout(flush, windowMs) : setImmediate(flush);
  }

  function flush(): void {
    if (scheduled) {
      clearTimeout(scheduled as NodeJS.Timeout);
      clearImmediate(scheduled as NodeJS.Immediate);
    }
    scheduled = undefined;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      inFlight += 1;
      const run = runBatch(batch.map((queued) => queued.item))
        .then(
          (results) => {
            batch.forEach((queued, index) => {
              const result = results[index];
              if (result === undefined) queued.reject(new Error('batch returned fewer results than items'));
              else if (result.status === 'fulfilled') queued.resolve(result.value);
              else queued.reject(result.reason);
            });
          },
          (error: unknown) => {
            for (const queued of batch) queued.reject(error);
          },
        )
        .finally(() => {
          inFlight -= 1;
          running.delete(run);
          schedule();
        });
      running.add(run);
    }
  }

  const enqueue = (item: Item): Promise<Result> =>
    new Promise<Result>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      schedule();
    });
  return Object.assign(enqueue, {
    async settle(): Promise<void> {
      while (queue.length > 0 || running.size > 0) {
        if (queue.length > 0 && inFlight < maxInFlight) flush();
        await Promise.allSettled([...running]);
      }
    },
  });
}
