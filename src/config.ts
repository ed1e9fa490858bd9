import { z } from 'zod';

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

const envSchema = z.object({
  PORT: integer('PORT', 0, 65535, 8080),
  HOST: z.string().min(1).optional().default('127.0.0.1'),
  MYSQL_URL: optionalUrl('MYSQL_URL', ['mysql:']),
  MYSQL_POOL_MAX: integer('MYSQL_POOL_MAX', 1, 1000, 20),
  SQLITE_FILE: z.string().min(1).optional().default('./data/gateway.sqlite'),
  REDIS_URL: optionalUrl('REDIS_URL', ['redis:', 'rediss:']),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{0,64}$/, 'REDIS_PREFIX may contain only letters, digits and : . _ -')
    .optional()
    .default('lpg:'),
  GATEWAY_JWT_SECRET: z.string().min(32, 'GATEWAY_JWT_SECRET must be at least 32 characters').optional(),
  GATEWAY_DEMO: flag(false),
  POLL_WAIT_DEFAULT_S: integer('POLL_WAIT_DEFAULT_S', 0, 3600, 25),
  POLL_WAIT_MAX_S: integer('POLL_WAIT_MAX_S', 0, 3600, 25),
  POLL_LIMIT_DEFAULT: integer('POLL_LIMIT_DEFAULT', 1, 10000, 100),
  POLL_LIMIT_MAX: integer('POLL_LIMIT_MAX', 1, 10000, 500),
  POLL_MAX_PER_USER: integer('POLL_MAX_PER_USER', 1, 1000, 2),
  MAX_HELD_POLLS: integer('MAX_HELD_POLLS', 1, 10_000_000, 50_000),
  MAX_MESSAGE_BYTES: integer('MAX_MESSAGE_BYTES', 16, 16 * 1024 * 1024, 64 * 1024),
  MAX_BATCH_MESSAGES: integer('MAX_BATCH_MESSAGES', 1, 10_000, 100),
  SHUTDOWN_GRACE_MS: integer('SHUTDOWN_GRACE_MS', 0, 600_000, 10_000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional().default('info'),
});

export interface GatewayConfig {
  port: number;
  host: string;
  mysqlUrl: string | undefined;
  mysqlPoolMax: number;
  sqliteFile: string;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** Undefined means "development secret": generated and kept in the data directory, loudly. */
  jwtSecret: string | undefined;
  demo: boolean;
  pollWaitDefaultSeconds: number;
  pollWaitMaxSeconds: number;
  pollLimitDefault: number;
  pollLimitMax: number;
  pollMaxPerUser: number;
  maxHeldPolls: number;
  maxMessageBytes: number;
  maxBatchMessages: number;
  shutdownGraceMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
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
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    port: e.PORT,
    host: e.HOST,
    mysqlUrl: e.MYSQL_URL,
    mysqlPoolMax: e.MYSQL_POOL_MAX,
    sqliteFile: e.SQLITE_FILE,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    jwtSecret: e.GATEWAY_JWT_SECRET,
    demo: e.GATEWAY_DEMO,
    pollWaitDefaultSeconds: e.POLL_WAIT_DEFAULT_S,
    pollWaitMaxSeconds: e.POLL_WAIT_MAX_S,
    pollLimitDefault: e.POLL_LIMIT_DEFAULT,
    pollLimitMax: e.POLL_LIMIT_MAX,
    pollMaxPerUser: e.POLL_MAX_PER_USER,
    maxHeldPolls: e.MAX_HELD_POLLS,
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    maxBatchMessages: e.MAX_BATCH_MESSAGES,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
