import { z } from 'zod';
import { PUBLISH_DEFAULTS, type PublishDefault } from './auth/publish-policy.js';
import type { ClusterNode } from './bus/redis-cluster-bus.js';

/**
 * Configuration comes from environment variables only, validated once at start: a bad value stops
 * the process with a message naming the variable, instead of surfacing later as odd behaviour.
 */
const integer = (name: string, min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      if (!/^-?\d+$/.test(raw.trim())) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer, got ${JSON.stringify(raw)}` });
        return z.NEVER;
      }
      const value = Number(raw);
      if (value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `${name} must be between ${min} and ${max}, got ${value}` });
        return z.NEVER;
      }
      return value;
    });

const optionalUrl = (name: string, protocols: string[]) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        ctx.addIssue({ code: 'custom', message: `${name} is not a valid URL` });
        return z.NEVER;
      }
      if (!protocols.includes(url.protocol)) {
        ctx.addIssue({ code: 'custom', message: `${name} must use ${protocols.join(' or ')}, got ${url.protocol}` });
        return z.NEVER;
      }
      return raw;
    });

const flag = (fallback: boolean) =>
  z
    .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
    .optional()
    .transform((raw) => (raw === undefined || raw === '' ? fallback : ['1', 'true', 'yes'].includes(raw)));

/**
 * `CORS_ORIGINS`: comma-separated exact origins (`scheme://host[:port]`) and/or `*`. An entry with a
 * path or trailing slash would never equal the Origin header browsers send, so it is refused here
 * instead of failing silently at request time.
 */
const corsOrigins = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const origins: string[] = [];
    for (const entry of (raw ?? '').split(',').map((part) => part.trim()).filter((part) => part !== '')) {
      let url: URL | undefined;
      try {
        url = entry === '*' ? undefined : new URL(entry);
      } catch {
        url = undefined;
      }
      if (entry !== '*' && (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== entry)) {
        ctx.addIssue({
          code: 'custom',
          message: `CORS_ORIGINS: ${JSON.stringify(entry)} is not an origin like https://app.example.com (scheme://host[:port], no path or trailing slash) or *`,
        });
        return z.NEVER;
      }
      origins.push(entry);
    }
    return origins;
  });

/**
 * `PUBLISH_DEFAULT`: whom a token without a `pub` claim may publish to. Unset resolves later, in
 * loadConfig, because its default depends on NODE_ENV.
 */
const publishDefault = z
  .string()
  .optional()
  .transform((raw, ctx): PublishDefault | undefined => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const value = raw.trim();
    if (!(PUBLISH_DEFAULTS as readonly string[]).includes(value)) {
      ctx.addIssue({ code: 'custom', message: `PUBLISH_DEFAULT must be one of ${PUBLISH_DEFAULTS.join(', ')}, got ${JSON.stringify(raw)}` });
      return z.NEVER;
    }
    return value as PublishDefault;
  });

/** `host:port,host:port` (REDIS_CLUSTER_NODES); IPv6 hosts in brackets. Throws naming the bad entry. */
export function parseClusterNodes(raw: string): ClusterNode[] {
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new TypeError('expected at least one host:port');
  return entries.map((entry) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) throw new TypeError(`expected host:port, got ${JSON.stringify(entry)}`);
    return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
  });
}

const envSchema = z.object({
  PORT: integer('PORT', 0, 65535, 8080),
  HOST: z.string().min(1).optional().default('127.0.0.1'),
  MYSQL_URL: optionalUrl('MYSQL_URL', ['mysql:']),
  MYSQL_POOL_MAX: integer('MYSQL_POOL_MAX', 1, 1000, 20),
  MYSQL_STATEMENT_TIMEOUT_MS: integer('MYSQL_STATEMENT_TIMEOUT_MS', 0, 3_600_000, 0),
  MYSQL_ACQUIRE_TIMEOUT_MS: integer('MYSQL_ACQUIRE_TIMEOUT_MS', 100, 600_000, 5_000),
  MYSQL_CONNECT_TIMEOUT_MS: integer('MYSQL_CONNECT_TIMEOUT_MS', 100, 600_000, 10_000),
  MYSQL_RECONNECT_INTERVAL_MS: integer('MYSQL_RECONNECT_INTERVAL_MS', 10, 60_000, 200),
  SQLITE_FILE: z.string().min(1).optional().default('./data/gateway.sqlite'),
  REDIS_URL: optionalUrl('REDIS_URL', ['redis:', 'rediss:']),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{0,64}$/, 'REDIS_PREFIX may contain only letters, digits and : . _ -')
    .optional()
    .default('lpg:'),
  REDIS_CLUSTER_NODES: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
      try {
        return parseClusterNodes(raw);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `REDIS_CLUSTER_NODES: ${(error as Error).message} (comma-separated host:port list)` });
        return z.NEVER;
      }
    }),
  GATEWAY_WORKERS: integer('GATEWAY_WORKERS', 0, 1024, 0),
  GATEWAY_JWT_SECRET: z.string().min(32, 'GATEWAY_JWT_SECRET must be at least 32 characters').optional(),
  GATEWAY_DEMO: flag(false),
  TRUST_PROXY: flag(false),
  POLL_WAIT_DEFAULT_S: integer('POLL_WAIT_DEFAULT_S', 0, 3600, 25),
  POLL_WAIT_MAX_S: integer('POLL_WAIT_MAX_S', 0, 3600, 25),
  POLL_LIMIT_DEFAULT: integer('POLL_LIMIT_DEFAULT', 1, 10000, 100),
  POLL_LIMIT_MAX: integer('POLL_LIMIT_MAX', 1, 10000, 500),
  POLL_MAX_PER_USER: integer('POLL_MAX_PER_USER', 1, 1000, 2),
  MAX_HELD_POLLS: integer('MAX_HELD_POLLS', 1, 10_000_000, 50_000),
  MAX_MESSAGE_BYTES: integer('MAX_MESSAGE_BYTES', 16, 16 * 1024 * 1024, 64 * 1024),
  MAX_BATCH_MESSAGES: integer('MAX_BATCH_MESSAGES', 1, 10_000, 100),
  MESSAGE_TTL_DEFAULT_S: integer('MESSAGE_TTL_DEFAULT_S', 0, 315_360_000, 0),
  MESSAGE_TTL_MAX_S: integer('MESSAGE_TTL_MAX_S', 1, 315_360_000, 2_592_000),
  SHUTDOWN_GRACE_MS: integer('SHUTDOWN_GRACE_MS', 0, 600_000, 10_000),
  HEADERS_TIMEOUT_MS: integer('HEADERS_TIMEOUT_MS', 500, 600_000, 15_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
  CORS_ORIGINS: corsOrigins,
  CORS_MAX_AGE_S: integer('CORS_MAX_AGE_S', 0, 86_400, 600),
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  PUBLISH_RATE_PER_USER: integer('PUBLISH_RATE_PER_USER', 0, 1_000_000, 100),
  PUBLISH_BURST_PER_USER: integer('PUBLISH_BURST_PER_USER', 1, 10_000_000, 200),
  PUBLISH_RATE_PER_IP: integer('PUBLISH_RATE_PER_IP', 0, 1_000_000, 1000),
  PUBLISH_BURST_PER_IP: integer('PUBLISH_BURST_PER_IP', 1, 10_000_000, 2000),
  PUBLISH_DEFAULT: publishDefault,
  RETENTION_ACKED_HOURS: integer('RETENTION_ACKED_HOURS', 0, 24 * 3650, 24),
  RETENTION_BATCH_SIZE: integer('RETENTION_BATCH_SIZE', 1, 100_000, 1000),
  RETENTION_INTERVAL_S: integer('RETENTION_INTERVAL_S', 1, 86_400, 300),
});

/** Every environment variable the configuration reads (the README documents each). */
export const ENV_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

export interface GatewayConfig {
  port: number;
  host: string;
  mysqlUrl: string | undefined;
  mysqlPoolMax: number;
  /** Per-statement limit (0 = none): MariaDB max_statement_time, MySQL max_execution_time. */
  mysqlStatementTimeoutMs: number;
  /** How long a query waits for a pooled connection, reconnects included, before a 503. */
  mysqlAcquireTimeoutMs: number;
  mysqlConnectTimeoutMs: number;
  /** Pause between attempts to open a replacement connection after one broke. */
  mysqlReconnectIntervalMs: number;
  sqliteFile: string;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** Set: wake-ups go through this Redis Cluster with sharded pub/sub instead of REDIS_URL. */
  redisClusterNodes: ClusterNode[] | undefined;
  /** Worker processes for `start` (0 = one per core when the store and bus can be shared, else 1). */
  workers: number;
  /** Undefined means "development secret": generated and kept in the data directory, loudly. */
  jwtSecret: string | undefined;
  demo: boolean;
  /** Take the client address from the last X-Forwarded-For hop (set by our own reverse proxy). */
  trustProxy: boolean;
  pollWaitDefaultSeconds: number;
  pollWaitMaxSeconds: number;
  pollLimitDefault: number;
  pollLimitMax: number;
  pollMaxPerUser: number;
  maxHeldPolls: number;
  maxMessageBytes: number;
  /** Seconds a message without `ttl` lives; 0 = forever (MESSAGE_TTL_DEFAULT_S). */
  messageTtlDefaultSeconds: number;
  /** Largest `ttl` a publish may ask for (MESSAGE_TTL_MAX_S). */
  messageTtlMaxSeconds: number;
  maxBatchMessages: number;
  shutdownGraceMs: number;
  /** How long a client may take to send its request headers (slow-loris guard). */
  headersTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Origins allowed cross-origin (listed ones with credentials); `*` = any, without credentials. */
  corsOrigins: string[];
  corsMaxAgeSeconds: number;
  /** Bearer token for GET /metrics; undefined = open. */
  metricsToken: string | undefined;
  /** Messages per second (0 = no limit) and bucket size, per sender and per client address, per process. */
  publishRatePerUser: number;
  publishBurstPerUser: number;
  publishRatePerIp: number;
  publishBurstPerIp: number;
  /**
   * Whom a token without a `pub` claim may publish to: `any` (every mailbox), `none`, or `self` (its
   * own mailbox). Default `any`, but `none` when NODE_ENV=production.
   */
  publishDefault: PublishDefault;
  /** Acked messages older than this are deleted; 0 keeps them forever. */
  retentionAckedHours: number;
  retentionBatchSize: number;
  retentionIntervalSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * @example
 * const config = loadConfig(process.env); // throws ConfigError naming each bad variable
 */
export function loadConfig(env: Record<string, string | undefined>): GatewayConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = issue.path.join('.');
        return issue.message.startsWith(variable) ? issue.message : `${variable}: ${issue.message}`;
      }),
    );
  }
  const e = parsed.data;
  // A default left unset follows a lowered maximum instead of contradicting it.
  if (!env.POLL_WAIT_DEFAULT_S) e.POLL_WAIT_DEFAULT_S = Math.min(e.POLL_WAIT_DEFAULT_S, e.POLL_WAIT_MAX_S);
  if (!env.POLL_LIMIT_DEFAULT) e.POLL_LIMIT_DEFAULT = Math.min(e.POLL_LIMIT_DEFAULT, e.POLL_LIMIT_MAX);
  const problems: string[] = [];
  if (e.POLL_WAIT_DEFAULT_S > e.POLL_WAIT_MAX_S) {
    problems.push(`POLL_WAIT_DEFAULT_S (${e.POLL_WAIT_DEFAULT_S}) must not exceed POLL_WAIT_MAX_S (${e.POLL_WAIT_MAX_S})`);
  }
  if (e.POLL_LIMIT_DEFAULT > e.POLL_LIMIT_MAX) {
    problems.push(`POLL_LIMIT_DEFAULT (${e.POLL_LIMIT_DEFAULT}) must not exceed POLL_LIMIT_MAX (${e.POLL_LIMIT_MAX})`);
  }
  if (e.MESSAGE_TTL_DEFAULT_S > e.MESSAGE_TTL_MAX_S) {
    problems.push(`MESSAGE_TTL_DEFAULT_S (${e.MESSAGE_TTL_DEFAULT_S}) must not exceed MESSAGE_TTL_MAX_S (${e.MESSAGE_TTL_MAX_S})`);
  }
  if (e.REDIS_URL && e.REDIS_CLUSTER_NODES) {
    problems.push('set either REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    port: e.PORT,
    host: e.HOST,
    mysqlUrl: e.MYSQL_URL,
    mysqlPoolMax: e.MYSQL_POOL_MAX,
    mysqlStatementTimeoutMs: e.MYSQL_STATEMENT_TIMEOUT_MS,
    mysqlAcquireTimeoutMs: e.MYSQL_ACQUIRE_TIMEOUT_MS,
    mysqlConnectTimeoutMs: e.MYSQL_CONNECT_TIMEOUT_MS,
    mysqlReconnectIntervalMs: e.MYSQL_RECONNECT_INTERVAL_MS,
    sqliteFile: e.SQLITE_FILE,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    redisClusterNodes: e.REDIS_CLUSTER_NODES,
    workers: e.GATEWAY_WORKERS,
    jwtSecret: e.GATEWAY_JWT_SECRET,
    demo: e.GATEWAY_DEMO,
    trustProxy: e.TRUST_PROXY,
    pollWaitDefaultSeconds: e.POLL_WAIT_DEFAULT_S,
    pollWaitMaxSeconds: e.POLL_WAIT_MAX_S,
    pollLimitDefault: e.POLL_LIMIT_DEFAULT,
    pollLimitMax: e.POLL_LIMIT_MAX,
    pollMaxPerUser: e.POLL_MAX_PER_USER,
    maxHeldPolls: e.MAX_HELD_POLLS,
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    messageTtlDefaultSeconds: e.MESSAGE_TTL_DEFAULT_S,
    messageTtlMaxSeconds: e.MESSAGE_TTL_MAX_S,
    maxBatchMessages: e.MAX_BATCH_MESSAGES,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    logLevel: e.LOG_LEVEL,
    corsOrigins: e.CORS_ORIGINS,
    corsMaxAgeSeconds: e.CORS_MAX_AGE_S,
    metricsToken: e.METRICS_TOKEN,
    publishRatePerUser: e.PUBLISH_RATE_PER_USER,
    publishBurstPerUser: e.PUBLISH_BURST_PER_USER,
    publishRatePerIp: e.PUBLISH_RATE_PER_IP,
    publishBurstPerIp: e.PUBLISH_BURST_PER_IP,
    // Safe by default where it matters: a production gateway does not let a token that names no
    // recipients write to every mailbox; development keeps today's tokens working unchanged.
    publishDefault: e.PUBLISH_DEFAULT ?? (env.NODE_ENV === 'production' ? 'none' : 'any'),
    retentionAckedHours: e.RETENTION_ACKED_HOURS,
    retentionBatchSize: e.RETENTION_BATCH_SIZE,
    retentionIntervalSeconds: e.RETENTION_INTERVAL_S,
  };
}
