import { z } from 'zod';
import { PUBLISH_DEFAULTS, type PublishDefault } from './auth/publish-policy.js';

// Configuration comes from environment variables only, validated once at start: a bad value stops
// the process with a message naming the variable, instead of surfacing later as odd behaviour.

/** An integer within [min, max], or undefined when unset or empty. */
const optionalInteger = (name: string, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return undefined;
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

const integer = (name: string, min: number, max: number, fallback: number) =>
  optionalInteger(name, min, max).transform((value) => value ?? fallback);

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
export function parseClusterNodes(raw: string): Array<{ host: string; port: number }> {
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new TypeError('expected at least one host:port');
  return entries.map((entry) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : NaN;
    if (!match || port < 1 || port > 65535) throw new TypeError(`expected host:port, got ${JSON.stringify(entry)}`);
    return { host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
  });
}

/**
 * The configuration, one group per concern, each read from its own environment variables. Every
 * part of the gateway is handed only its group (the HTTP layer never sees the JWT secret, the
 * store never sees Redis), and the groups' variables are the complete list the README documents.
 */
/**
 * The default wait and page size when only the maximums are set: a default left unset follows a
 * lowered maximum instead of contradicting it (environment variables and createGateway alike).
 */
export function pollDefaultsUnder(waitMaxSeconds: number, limitMax: number): { waitDefaultSeconds: number; limitDefault: number } {
  return { waitDefaultSeconds: Math.min(25, waitMaxSeconds), limitDefault: Math.min(100, limitMax) };
}

const CONFIG_GROUPS = {
  /** The listening server and what every response shares. */
  http: z
    .object({
      PORT: integer('PORT', 0, 65535, 8080),
      HOST: z.string().min(1).optional().default('127.0.0.1'),
      TRUST_PROXY: flag(false),
      HEADERS_TIMEOUT_MS: integer('HEADERS_TIMEOUT_MS', 500, 600_000, 15_000),
      SHUTDOWN_GRACE_MS: integer('SHUTDOWN_GRACE_MS', 0, 600_000, 10_000),
      CORS_ORIGINS: corsOrigins,
      CORS_MAX_AGE_S: integer('CORS_MAX_AGE_S', 0, 86_400, 600),
      METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
      GATEWAY_DEMO: flag(false),
    })
    .transform((e) => ({
      port: e.PORT,
      host: e.HOST,
      /** Take the client address from the last X-Forwarded-For hop (set by our own reverse proxy). */
      trustProxy: e.TRUST_PROXY,
      /** How long a client may take to send its request headers (slow-loris guard). */
      headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      /** Origins allowed cross-origin (listed ones with credentials); `*` = any, without credentials. */
      corsOrigins: e.CORS_ORIGINS,
      corsMaxAgeSeconds: e.CORS_MAX_AGE_S,
      /** Bearer token for GET /metrics; undefined = open. */
      metricsToken: e.METRICS_TOKEN,
      demo: e.GATEWAY_DEMO,
    })),

  /** Held polls: how long, how many messages, how many at once. */
  poll: z
    .object({
      POLL_WAIT_DEFAULT_S: optionalInteger('POLL_WAIT_DEFAULT_S', 0, 3600),
      POLL_WAIT_MAX_S: integer('POLL_WAIT_MAX_S', 0, 3600, 25),
      POLL_LIMIT_DEFAULT: optionalInteger('POLL_LIMIT_DEFAULT', 1, 10000),
      POLL_LIMIT_MAX: integer('POLL_LIMIT_MAX', 1, 10000, 500),
      POLL_MAX_PER_USER: integer('POLL_MAX_PER_USER', 1, 1000, 2),
      MAX_HELD_POLLS: integer('MAX_HELD_POLLS', 1, 10_000_000, 50_000),
    })
    .transform((e, ctx) => {
      const followed = pollDefaultsUnder(e.POLL_WAIT_MAX_S, e.POLL_LIMIT_MAX);
      const waitDefaultSeconds = e.POLL_WAIT_DEFAULT_S ?? followed.waitDefaultSeconds;
      const limitDefault = e.POLL_LIMIT_DEFAULT ?? followed.limitDefault;
      if (waitDefaultSeconds > e.POLL_WAIT_MAX_S) {
        ctx.addIssue({ code: 'custom', message: `POLL_WAIT_DEFAULT_S (${waitDefaultSeconds}) must not exceed POLL_WAIT_MAX_S (${e.POLL_WAIT_MAX_S})` });
      }
      if (limitDefault > e.POLL_LIMIT_MAX) {
        ctx.addIssue({ code: 'custom', message: `POLL_LIMIT_DEFAULT (${limitDefault}) must not exceed POLL_LIMIT_MAX (${e.POLL_LIMIT_MAX})` });
      }
      return {
        waitDefaultSeconds,
        waitMaxSeconds: e.POLL_WAIT_MAX_S,
        limitDefault,
        limitMax: e.POLL_LIMIT_MAX,
        /** Held polls per user per process; beyond it the oldest is superseded. */
        maxPerUser: e.POLL_MAX_PER_USER,
        /** Held polls per process; beyond it new long polls get 503 `too_many_polls`. */
        maxHeld: e.MAX_HELD_POLLS,
      };
    }),

  /** What a publish may contain. */
  messages: z
    .object({
      MAX_MESSAGE_BYTES: integer('MAX_MESSAGE_BYTES', 16, 16 * 1024 * 1024, 64 * 1024),
      MAX_BATCH_MESSAGES: integer('MAX_BATCH_MESSAGES', 1, 10_000, 100),
      MESSAGE_TTL_DEFAULT_S: integer('MESSAGE_TTL_DEFAULT_S', 0, 315_360_000, 0),
      MESSAGE_TTL_MAX_S: integer('MESSAGE_TTL_MAX_S', 1, 315_360_000, 2_592_000),
    })
    .transform((e, ctx) => {
      if (e.MESSAGE_TTL_DEFAULT_S > e.MESSAGE_TTL_MAX_S) {
        ctx.addIssue({ code: 'custom', message: `MESSAGE_TTL_DEFAULT_S (${e.MESSAGE_TTL_DEFAULT_S}) must not exceed MESSAGE_TTL_MAX_S (${e.MESSAGE_TTL_MAX_S})` });
      }
      return {
        /** Largest message `body`, as JSON bytes. */
        maxBytes: e.MAX_MESSAGE_BYTES,
        maxBatch: e.MAX_BATCH_MESSAGES,
        /** Seconds a message without `ttl` lives; 0 = forever. */
        ttlDefaultSeconds: e.MESSAGE_TTL_DEFAULT_S,
        /** Largest `ttl` a publish may ask for. */
        ttlMaxSeconds: e.MESSAGE_TTL_MAX_S,
      };
    }),

  /** Publish rate limits, per process: messages per second (0 = no limit) and bucket size. */
  rateLimit: z
    .object({
      PUBLISH_RATE_PER_USER: integer('PUBLISH_RATE_PER_USER', 0, 1_000_000, 100),
      PUBLISH_BURST_PER_USER: integer('PUBLISH_BURST_PER_USER', 1, 10_000_000, 200),
      PUBLISH_RATE_PER_IP: integer('PUBLISH_RATE_PER_IP', 0, 1_000_000, 1000),
      PUBLISH_BURST_PER_IP: integer('PUBLISH_BURST_PER_IP', 1, 10_000_000, 2000),
    })
    .transform((e) => ({
      perUser: { ratePerSecond: e.PUBLISH_RATE_PER_USER, burst: e.PUBLISH_BURST_PER_USER },
      perIp: { ratePerSecond: e.PUBLISH_RATE_PER_IP, burst: e.PUBLISH_BURST_PER_IP },
    })),

  /** Who may do what: the token secret and the publish default. */
  auth: z
    .object({
      GATEWAY_JWT_SECRET: z.string().min(32, 'GATEWAY_JWT_SECRET must be at least 32 characters').optional(),
      PUBLISH_DEFAULT: publishDefault,
    })
    .transform((e) => ({
      /** Undefined means "development secret": generated and kept in the data directory, loudly. */
      jwtSecret: e.GATEWAY_JWT_SECRET,
      /**
       * Whom a token without a `pub` claim may publish to: `any` (every mailbox), `none`, or `self`
       * (its own mailbox). Undefined here; loadConfig resolves it from NODE_ENV.
       */
      publishDefault: e.PUBLISH_DEFAULT,
    })),

  /** The message store: MySQL/MariaDB when MYSQL_URL is set, else SQLite. Shaped as createKnex's options. */
  store: z
    .object({
      MYSQL_URL: optionalUrl('MYSQL_URL', ['mysql:']),
      MYSQL_POOL_MAX: integer('MYSQL_POOL_MAX', 1, 1000, 20),
      MYSQL_STATEMENT_TIMEOUT_MS: integer('MYSQL_STATEMENT_TIMEOUT_MS', 0, 3_600_000, 0),
      MYSQL_ACQUIRE_TIMEOUT_MS: integer('MYSQL_ACQUIRE_TIMEOUT_MS', 100, 600_000, 5_000),
      MYSQL_CONNECT_TIMEOUT_MS: integer('MYSQL_CONNECT_TIMEOUT_MS', 100, 600_000, 10_000),
      MYSQL_RECONNECT_INTERVAL_MS: integer('MYSQL_RECONNECT_INTERVAL_MS', 10, 60_000, 200),
      SQLITE_FILE: z.string().min(1).optional().default('./data/gateway.sqlite'),
    })
    .transform((e) => ({
      mysqlUrl: e.MYSQL_URL,
      mysqlPoolMax: e.MYSQL_POOL_MAX,
      /** Per-statement limit (0 = none): MariaDB max_statement_time, MySQL max_execution_time. */
      mysqlStatementTimeoutMs: e.MYSQL_STATEMENT_TIMEOUT_MS,
      /** How long a query waits for a pooled connection, reconnects included, before a 503. */
      mysqlAcquireTimeoutMs: e.MYSQL_ACQUIRE_TIMEOUT_MS,
      mysqlConnectTimeoutMs: e.MYSQL_CONNECT_TIMEOUT_MS,
      /** Pause between attempts to open a replacement connection after one broke. */
      mysqlReconnectIntervalMs: e.MYSQL_RECONNECT_INTERVAL_MS,
      sqliteFile: e.SQLITE_FILE,
    })),

  /** The wake-up bus: Redis, a Redis Cluster, or (neither set) in-process. */
  redis: z
    .object({
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
    })
    .transform((e, ctx) => {
      if (e.REDIS_URL && e.REDIS_CLUSTER_NODES) {
        ctx.addIssue({ code: 'custom', message: 'set either REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both' });
      }
      return {
        url: e.REDIS_URL,
        /** Namespaces the wake channels, so several gateways can share one Redis. */
        prefix: e.REDIS_PREFIX,
        /** Set: wake-ups go through this Redis Cluster with sharded pub/sub instead of REDIS_URL. */
        clusterNodes: e.REDIS_CLUSTER_NODES,
      };
    }),

  /** The purge of acked and expired messages. */
  retention: z
    .object({
      RETENTION_ACKED_HOURS: integer('RETENTION_ACKED_HOURS', 0, 24 * 3650, 24),
      RETENTION_BATCH_SIZE: integer('RETENTION_BATCH_SIZE', 1, 100_000, 1000),
      RETENTION_INTERVAL_S: integer('RETENTION_INTERVAL_S', 1, 86_400, 300),
    })
    .transform((e) => ({
      /** Acked messages older than this are deleted; 0 keeps them forever. */
      ackedHours: e.RETENTION_ACKED_HOURS,
      batchSize: e.RETENTION_BATCH_SIZE,
      intervalSeconds: e.RETENTION_INTERVAL_S,
    })),

  /** The process: how many workers, how much logging. */
  runtime: z
    .object({
      GATEWAY_WORKERS: integer('GATEWAY_WORKERS', 0, 1024, 0),
      LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
    })
    .transform((e) => ({
      /** Worker processes for `start` (0 = one per core when the store and bus can be shared, else 1). */
      workers: e.GATEWAY_WORKERS,
      logLevel: e.LOG_LEVEL,
    })),
};

type ConfigGroups = { [Group in keyof typeof CONFIG_GROUPS]: z.output<(typeof CONFIG_GROUPS)[Group]> };
export type HttpConfig = ConfigGroups['http'];
export type PollConfig = ConfigGroups['poll'];
export type MessagesConfig = ConfigGroups['messages'];
export type RateLimitConfig = ConfigGroups['rateLimit'];
export type AuthConfig = Omit<ConfigGroups['auth'], 'publishDefault'> & { publishDefault: PublishDefault };
export type StoreConfig = ConfigGroups['store'];
export type RedisConfig = ConfigGroups['redis'];
export type RetentionConfig = ConfigGroups['retention'];
export type RuntimeConfig = ConfigGroups['runtime'];

export interface GatewayConfig extends Omit<ConfigGroups, 'auth'> {
  auth: AuthConfig;
}

/** Every environment variable the configuration reads (the README documents each). */
export const ENV_VARIABLES: readonly string[] = Object.freeze(Object.values(CONFIG_GROUPS).flatMap((group) => Object.keys(group.in.shape)));

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
  const problems: string[] = [];
  const groups: Partial<Record<keyof typeof CONFIG_GROUPS, unknown>> = {};
  for (const [name, schema] of Object.entries(CONFIG_GROUPS) as Array<[keyof typeof CONFIG_GROUPS, z.ZodType]>) {
    const parsed = schema.safeParse(env);
    if (parsed.success) {
      groups[name] = parsed.data;
      continue;
    }
    for (const issue of parsed.error.issues) {
      const variable = issue.path.join('.');
      problems.push(issue.message.startsWith(variable) ? issue.message : `${variable}: ${issue.message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config = groups as ConfigGroups;
  return {
    ...config,
    auth: {
      ...config.auth,
      // Safe by default where it matters: a production gateway does not let a token that names no
      // recipients write to every mailbox; development keeps today's tokens working unchanged.
      publishDefault: config.auth.publishDefault ?? (env.NODE_ENV === 'production' ? 'none' : 'any'),
    },
  };
}
