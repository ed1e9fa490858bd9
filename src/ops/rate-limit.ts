import { systemClock, type Clock } from '../core/model.js';

export interface TokenBucketOptions {
  /** Tokens added per second; 0 disables the limit. */
  ratePerSecond: number;
  /** Bucket size: how many may be spent at once after a quiet period. */
  burst: number;
  /**
   * Keys kept in memory. Beyond it, buckets that have refilled completely are forgotten first
   * (forgetting a full bucket changes nothing), then the least recently used: under a flood of
   * distinct keys the limiter stays bounded and errs on the side of allowing.
   */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface RateLimitRefusal {
  /** Whole seconds until enough tokens are back; at least 1. */
  retryAfterSeconds: number;
}

/**
 * In-memory token buckets keyed by a string, one per process: limits are per gateway process, so
 * N processes behind a load balancer allow up to N times the configured rate in total.
 *
 * @example
 * const limiter = createTokenBuckets({ ratePerSecond: 10, burst: 20 });
 * if (limiter.available('alice', 1, now) < 1) ...
 */
export function createTokenBuckets(options: TokenBucketOptions) {
  const { ratePerSecond, burst } = options;
  const maxKeys = options.maxKeys ?? 100_000;
  if (!(Number.isFinite(ratePerSecond) && ratePerSecond >= 0)) throw new TypeError('Expected `ratePerSecond` to be a non-negative number');
  if (!(Number.isInteger(burst) && burst >= 1)) throw new TypeError('Expected `burst` to be a positive integer');
  if (!(Number.isInteger(maxKeys) && maxKeys >= 1)) throw new TypeError('Expected `maxKeys` to be a positive integer');
  const buckets = new Map<string, Bucket>();

  function refilled(bucket: Bucket, now: number): number {
    return Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.updatedAt) / 1000) * ratePerSecond);
  }

  function forgetSome(now: number): void {
    for (const [key, bucket] of buckets) if (refilled(bucket, now) >= burst) buckets.delete(key);
    // Still too many: drop the least recently used (Map keeps insertion order; `spend` re-inserts).
    for (const key of buckets.keys()) {
      if (buckets.size <= maxKeys * 0.9) break;
      buckets.delete(key);
    }
  }

  return {
    enabled: ratePerSecond > 0,
    /** Tokens `key` has now (burst for an unknown key). */
    available(key: string, now: number): number {
      const bucket = buckets.get(key);
      return bucket ? refilled(bucket, now) : burst;
    },
    /** Seconds until `key` has `cost` tokens again. */
    waitSeconds(key: string, cost: number, now: number): number {
      const missing = Math.min(cost, burst) - this.available(key, now);
      return Math.max(1, Math.ceil(missing / ratePerSecond));
    },
    spend(key: string, cost: number, now: number): void {
      const tokens = this.available(key, now) - Math.min(cost, burst);
      buckets.delete(key);
      buckets.set(key, { tokens, updatedAt: now });
      if (buckets.size > maxKeys) forgetSome(now);
    },
    get size() {
      return buckets.size;
    },
  };
}

export type TokenBuckets = ReturnType<typeof createTokenBuckets>;

export interface PublishRateLimitOptions {
  perUser: TokenBucketOptions;
  perIp: TokenBucketOptions;
}

export interface PublishRateLimit {
  /**
   * Spends `messages` tokens (capped at the burst, so one maximal batch is always possible after
   * a pause) from the sender's and the address's buckets, or neither: a request refused by one
   * limit does not use up the other. Undefined = allowed.
   */
  admit(userId: string, ip: string, messages: number): (RateLimitRefusal & { scope: 'user' | 'ip' }) | undefined;
}

/**
 * Per-user and per-IP publish limits.
 *
 * @example
 * const limit = createPublishRateLimit({ clock }, { perUser: { ratePerSecond: 20, burst: 40 }, perIp: { ratePerSecond: 200, burst: 400 } });
 * const refusal = limit.admit('alice', '203.0.113.7', 1); // → undefined or { scope, retryAfterSeconds }
 */
export function createPublishRateLimit(dependencies: { clock?: Clock }, options: PublishRateLimitOptions): PublishRateLimit {
  const clock = dependencies.clock ?? systemClock;
  const byUser = createTokenBuckets(options.perUser);
  const byIp = createTokenBuckets(options.perIp);
  return {
    admit(userId, ip, messages) {
      const now = clock.now();
      const cost = Math.max(1, messages);
      const refusals: Array<RateLimitRefusal & { scope: 'user' | 'ip' }> = [];
      if (byUser.enabled && byUser.available(userId, now) < Math.min(cost, options.perUser.burst)) {
        refusals.push({ scope: 'user', retryAfterSeconds: byUser.waitSeconds(userId, cost, now) });
      }
      if (byIp.enabled && byIp.available(ip, now) < Math.min(cost, options.perIp.burst)) {
        refusals.push({ scope: 'ip', retryAfterSeconds: byIp.waitSeconds(ip, cost, now) });
      }
      if (refusals.length > 0) return refusals.reduce((a, b) => (b.retryAfterSeconds > a.retryAfterSeconds ? b : a));
      if (byUser.enabled) byUser.spend(userId, cost, now);
      if (byIp.enabled) byIp.spend(ip, cost, now);
      return undefined;
    },
  };
}
