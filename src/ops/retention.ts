import { systemClock, type Clock } from '../core/model.js';
import type { RetentionStore } from '../store/types.js';

export interface RetentionOptions {
  /**
   * Acked messages older than this many milliseconds (since their ack) are deleted, and expired
   * ones as long after their expiry; undefined keeps both forever.
   */
  maxAckedAgeMs: number | undefined;
  /** Topics keep their last `max` messages, none older than `maxAgeMs`; undefined = no trim. */
  topicHistory?: { max: number; maxAgeMs: number } | undefined;
  /** Rows per DELETE statement. */
  batchSize: number;
  /** Pause between runs. */
  intervalMs: number;
  /**
   * Statements per run, so one run after a long outage cannot monopolise the database; what is
   * left is picked up by the next run. Default 100.
   */
  maxBatchesPerRun?: number;
  /** Pause between statements of a run, letting polls and publishes in between. Default 50 ms. */
  pauseBetweenBatchesMs?: number;
  /**
   * Deleted rows per run (for metrics and logs): all of them, of those the expired ones, and the
   * topic messages trimmed.
   */
  onPurged?: (count: number, expired: number, trimmed: number) => void;
  /** A failed run is reported and retried at the next interval, never thrown. */
  onError?: (error: unknown) => void;
}

export interface Retention {
  /** One run: bounded batches until a batch comes back short or the per-run cap is reached. */
  runOnce(): Promise<number>;
  /** Stops the timer and waits for a run in progress to finish its current statement. */
  stop(): Promise<void>;
}

/**
 * Purges acked and expired messages and trims topics' histories on a timer. Several processes may run it at once: each DELETE is bounded
 * and idempotent, so they only share the work.
 *
 * @example
 * const retention = startRetention({ store }, { maxAckedAgeMs: 24 * 3600_000, batchSize: 1000, intervalMs: 300_000 });
 * await retention.stop();
 */
export function startRetention(dependencies: { store: RetentionStore; clock?: Clock }, options: RetentionOptions): Retention {
  const { store } = dependencies;
  const clock = dependencies.clock ?? systemClock;
  const maxBatchesPerRun = options.maxBatchesPerRun ?? 100;
  const pauseMs = options.pauseBetweenBatchesMs ?? 50;
  if (options.maxAckedAgeMs !== undefined && !(Number.isFinite(options.maxAckedAgeMs) && options.maxAckedAgeMs >= 0)) {
    throw new TypeError('Expected `maxAckedAgeMs` to be a non-negative number or undefined');
  }
  const { topicHistory } = options;
  if (topicHistory !== undefined && !(Number.isInteger(topicHistory.max) && topicHistory.max >= 1 && Number.isFinite(topicHistory.maxAgeMs) && topicHistory.maxAgeMs >= 0)) {
    throw new TypeError('Expected `topicHistory` to be { max: a positive integer, maxAgeMs: a non-negative number }');
  }
  if (!(Number.isInteger(options.batchSize) && options.batchSize >= 1)) throw new TypeError('Expected `batchSize` to be a positive integer');
  if (!(Number.isFinite(options.intervalMs) && options.intervalMs >= 1)) throw new TypeError('Expected `intervalMs` to be a positive number');

  let stopped = false;
  let current: Promise<number> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wakePause: (() => void) | undefined;

  /** Deletes in bounded batches until a batch comes back short or the per-run cap is reached. */
  async function purgeInBatches(purgeBatch: (limit: number) => Promise<number>, batchesLeft: number): Promise<{ total: number; batches: number }> {
    let total = 0;
    let batches = 0;
    while (batches < batchesLeft && !stopped) {
      const deleted = await purgeBatch(options.batchSize);
      batches += 1;
      total += deleted;
      if (deleted < options.batchSize) break;
      if (pauseMs > 0) {
        await new Promise<void>((resolve) => {
          const pause = setTimeout(resolve, pauseMs);
          wakePause = () => {
            clearTimeout(pause);
            resolve();
          };
        });
        wakePause = undefined;
      }
    }
    return { total, batches };
  }

  async function purge(): Promise<{ total: number; expired: number; trimmed: number }> {
    // One cut-off per run: rows acked (or expiring) while the run goes on wait for the next one.
    // Expired rows are kept as long as acked ones, so a sender can still ask about them.
    const now = clock.now();
    let batchesLeft = maxBatchesPerRun;
    let acked = 0;
    let expired = 0;
    if (options.maxAckedAgeMs !== undefined) {
      const cutoff = now - options.maxAckedAgeMs;
      const ackedRun = await purgeInBatches((limit) => store.purgeAcked(cutoff, limit), batchesLeft);
      batchesLeft -= ackedRun.batches;
      const expiredRun = await purgeInBatches((limit) => store.purgeExpired(cutoff, limit), batchesLeft);
      batchesLeft -= expiredRun.batches;
      acked = ackedRun.total;
      expired = expiredRun.total;
    }
    let trimmed = 0;
    if (topicHistory !== undefined && batchesLeft > 0) {
      trimmed = (await purgeInBatches((limit) => store.trimTopics(topicHistory.max, now - topicHistory.maxAgeMs, limit), batchesLeft)).total;
    }
    return { total: acked + expired + trimmed, expired, trimmed };
  }

  function runOnce(): Promise<number> {
    current ??= purge()
      .then(({ total, expired, trimmed }) => {
        options.onPurged?.(total, expired, trimmed);
        return total;
      })
      .finally(() => {
        current = undefined;
      });
    return current;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      runOnce()
        .catch((error: unknown) => options.onError?.(error))
        .finally(schedule);
    }, options.intervalMs);
    // Retention alone must never keep a process alive.
    timer.unref();
  }
  schedule();

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wakePause?.();
      await current?.catch(() => {});
    },
  };
}
