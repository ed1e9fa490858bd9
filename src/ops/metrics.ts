import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { EngineObserver, PollOutcome } from '../core/engine.js';
import { systemClock, type Clock } from '../core/model.js';

/** What the gateway's metrics read when scraped: live values, not counters. */
export interface MetricsSources {
  heldPolls(): number;
  /** Clients present through this process (one per client and user or topic); absent when presence is off. */
  presenceEntries?(): number;
  busHealthy(): boolean;
  /** Resolves when the store answers; rejects (or times out) when it does not. */
  pingStore(): Promise<void>;
  clock?: Clock;
}

export interface GatewayMetrics {
  /** Passed to the engine as `observer`. */
  readonly observer: EngineObserver;
  /** Counts publishes refused by a rate limit, by which limit refused them. */
  rateLimited(scope: 'user' | 'ip'): void;
  /** Counts messages removed by retention: `count` in all, `expired` of them because they expired. */
  purged(count: number, expired: number, trimmed?: number): void;
  readonly contentType: string;
  render(): Promise<string>;
}

const POLL_OUTCOMES: PollOutcome[] = ['messages', 'timeout', 'superseded', 'aborted', 'drained', 'error'];
const STORE_PING_TIMEOUT_MS = 1_000;

async function answersInTime(check: () => Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), ms);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Prometheus metrics for one gateway, registered on the registry it is given (never the global
 * default one), so several gateways in one process — tests do that — keep separate numbers.
 *
 * @example
 * const registry = new Registry();
 * const metrics = createGatewayMetrics(registry, { heldPolls: () => engine.heldPolls, busHealthy: () => bus.healthy, pingStore: () => store.ping() });
 * const engine = createEngine({ store, bus }, { observer: metrics.observer });
 */
export function createGatewayMetrics(registry: Registry, sources: MetricsSources): GatewayMetrics {
  const clock = sources.clock ?? systemClock;
  // Process and runtime metrics, including event-loop lag (monitorEventLoopDelay percentiles).
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'lpg_held_polls',
    help: 'Long polls currently held open by this process.',
    registers: [registry],
    collect() {
      this.set(sources.heldPolls());
    },
  });
  new Gauge({
    name: 'lpg_presence_entries',
    help: 'Presence entries this process keeps: one per client and user, and per client and topic it reads (0 when presence is off).',
    registers: [registry],
    collect() {
      this.set(sources.presenceEntries?.() ?? 0);
    },
  });
  new Gauge({
    name: 'lpg_bus_healthy',
    help: '1 while the wake-up bus delivers wakes, 0 while held polls fall back to timed store reads.',
    registers: [registry],
    collect() {
      this.set(sources.busHealthy() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'lpg_store_healthy',
    help: `1 when the message store answered a ping within ${STORE_PING_TIMEOUT_MS} ms at scrape time, else 0.`,
    registers: [registry],
    async collect() {
      this.set((await answersInTime(sources.pingStore, STORE_PING_TIMEOUT_MS)) ? 1 : 0);
    },
  });
  const polls = new Counter({
    name: 'lpg_polls_total',
    help: 'Finished polls by outcome.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of POLL_OUTCOMES) polls.inc({ outcome }, 0);
  const published = new Counter({
    name: 'lpg_messages_published_total',
    help: 'Published messages: `stored` new rows, `duplicate` idempotent repeats of a stored one.',
    labelNames: ['result'],
    registers: [registry],
  });
  published.inc({ result: 'stored' }, 0);
  published.inc({ result: 'duplicate' }, 0);
  const delivered = new Counter({
    name: 'lpg_messages_delivered_total',
    help: 'Messages sent in poll responses (redeliveries of unacked messages included).',
    registers: [registry],
  });
  const deliveryLatency = new Histogram({
    name: 'lpg_delivery_latency_seconds',
    help: 'From a message being stored to a poll response carrying it (redeliveries included).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'lpg_publish_rate_limited_total',
    help: 'Publish requests refused with 429, by the limit that refused them.',
    labelNames: ['scope'],
    registers: [registry],
  });
  rateLimited.inc({ scope: 'user' }, 0);
  rateLimited.inc({ scope: 'ip' }, 0);
  const purged = new Counter({
    name: 'lpg_retention_purged_total',
    help: 'Acked and expired messages deleted by retention.',
    registers: [registry],
  });
  const expired = new Counter({
    name: 'lpg_messages_expired_total',
    help: 'Messages that expired (counted once, when retention deletes them; unacked ones were never delivered after their expiry).',
    registers: [registry],
  });

  const trimmed = new Counter({
    name: 'lpg_topic_messages_trimmed_total',
    help: 'Topic messages taken out of their histories by the trim (TOPIC_HISTORY_MAX, TOPIC_HISTORY_TTL_S).',
    registers: [registry],
  });

  return {
    observer: {
      published(stored, duplicates) {
        if (stored > 0) published.inc({ result: 'stored' }, stored);
        if (duplicates > 0) published.inc({ result: 'duplicate' }, duplicates);
      },
      pollEnded(outcome, messages) {
        polls.inc({ outcome });
        if (messages.length === 0) return;
        delivered.inc(messages.length);
        const now = clock.now();
        for (const message of messages) deliveryLatency.observe(Math.max(0, now - message.createdAt) / 1000);
      },
    },
    rateLimited(scope) {
      rateLimited.inc({ scope });
    },
    purged(count, expiredCount, trimmedCount = 0) {
      if (count - trimmedCount > 0) purged.inc(count - trimmedCount);
      if (trimmedCount > 0) trimmed.inc(trimmedCount);
      if (expiredCount > 0) expired.inc(expiredCount);
    },
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}
