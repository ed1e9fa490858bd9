import { z } from 'zod';
import { PUBLISH_DEFAULTS, type PublishDefault } from './auth/publish-policy.js';
import { clusterNodes, corsOrigins, flag, integer, oneOf, text, url, type Setting } from './config/setting-kinds.js';

export { parseClusterNodes } from './config/setting-kinds.js';

// One validator for the configuration, whichever way it arrives: environment variables (the
// command line, validated once at start) or createGateway's options (embedding). Each setting is
// declared once below — its variable, its zod schema, its default — and both ways go through the
// same schemas and the same cross-checks; only the name a problem is reported under differs
// (`POLL_LIMIT_MAX` or `poll.limitMax`). A bad value stops the start with a message naming it,
// instead of surfacing later as odd behaviour.

/** What a group may check across its settings, and the name each setting is reported under. */
interface GroupContext {
  problem(message: string): void;
  nameOf(key: string): string;
  /** NODE_ENV: some defaults are safer in production. */
  nodeEnv: string | undefined;
}

interface Group<Values extends Record<string, unknown>, Output> {
  settings: { [Key in keyof Values]-?: Setting<Exclude<Values[Key], undefined>> };
  finish(values: Values, context: GroupContext): Output;
}

const group = <Values extends Record<string, unknown>, Output = Values>(definition: Group<Values, Output>) => definition;
const asIs = <Values>(values: Values) => values;

/**
 * The default wait and page size when only the maximums are set: a default left unset follows a
 * lowered maximum instead of contradicting it (environment variables and createGateway alike).
 */
function pollDefaultsUnder(waitMaxSeconds: number, limitMax: number): { waitDefaultSeconds: number; limitDefault: number } {
  return { waitDefaultSeconds: Math.min(25, waitMaxSeconds), limitDefault: Math.min(100, limitMax) };
}

/**
 * The configuration, one group per concern, each read from its own settings. Every part of the
 * gateway is handed only its group (the HTTP layer never sees the JWT secret, the store never sees
 * Redis), and the groups' variables are the complete list the README documents.
 */
const CONFIG_GROUPS = {
  /** The listening server and what every response shares. */
  http: group<{
    port: number;
    host: string;
    /** Take the client address from the last X-Forwarded-For hop (set by our own reverse proxy). */
    trustProxy: boolean;
    /** How long a client may take to send its request headers (slow-loris guard). */
    headersTimeoutMs: number;
    shutdownGraceMs: number;
    /** Origins allowed cross-origin (listed ones with credentials); `*` = any, without credentials. */
    corsOrigins: string[];
    corsMaxAgeSeconds: number;
    /** Bearer token for GET /metrics; undefined = open. */
    metricsToken?: string | undefined;
    demo: boolean;
  }>({
    settings: {
      port: integer('PORT', 0, 65535, 8080),
      host: text('HOST', z.string().min(1), (name) => `${name} must not be empty`, '127.0.0.1'),
      trustProxy: flag('TRUST_PROXY', false),
      headersTimeoutMs: integer('HEADERS_TIMEOUT_MS', 500, 600_000, 15_000),
      shutdownGraceMs: integer('SHUTDOWN_GRACE_MS', 0, 600_000, 10_000),
      corsOrigins,
      corsMaxAgeSeconds: integer('CORS_MAX_AGE_S', 0, 86_400, 600),
      metricsToken: text('METRICS_TOKEN', z.string().min(16), (name) => `${name} must be at least 16 characters`),
      demo: flag('GATEWAY_DEMO', false),
    },
    finish: asIs,
  }),

  /** Held polls: how long, how many messages, how many at once. */
  poll: group<
    { waitDefaultSeconds?: number; waitMaxSeconds: number; limitDefault?: number; limitMax: number; maxPerUser: number; maxHeld: number; topicsMax: number },
    {
      waitDefaultSeconds: number;
      waitMaxSeconds: number;
      limitDefault: number;
      limitMax: number;
      /** Held polls per user per process; beyond it the oldest is superseded. */
      maxPerUser: number;
      /** Held polls per process; beyond it new long polls get 503 `too_many_polls`. */
      maxHeld: number;
      /** Topics one poll may read; more is 400 `too_many_topics`. */
      topicsMax: number;
    }
  >({
    settings: {
      waitDefaultSeconds: integer('POLL_WAIT_DEFAULT_S', 0, 3600),
      waitMaxSeconds: integer('POLL_WAIT_MAX_S', 0, 3600, 25),
      limitDefault: integer('POLL_LIMIT_DEFAULT', 1, 10000),
      limitMax: integer('POLL_LIMIT_MAX', 1, 10000, 500),
      maxPerUser: integer('POLL_MAX_PER_USER', 1, 1000, 2),
      maxHeld: integer('MAX_HELD_POLLS', 1, 10_000_000, 50_000),
      topicsMax: integer('POLL_TOPICS_MAX', 1, 1024, 64),
    },
    finish(values, { problem, nameOf }) {
      const followed = pollDefaultsUnder(values.waitMaxSeconds, values.limitMax);
      const waitDefaultSeconds = values.waitDefaultSeconds ?? followed.waitDefaultSeconds;
      const limitDefault = values.limitDefault ?? followed.limitDefault;
      if (waitDefaultSeconds > values.waitMaxSeconds) {
        problem(`${nameOf('waitDefaultSeconds')} (${waitDefaultSeconds}) must not exceed ${nameOf('waitMaxSeconds')} (${values.waitMaxSeconds})`);
      }
      if (limitDefault > values.limitMax) problem(`${nameOf('limitDefault')} (${limitDefault}) must not exceed ${nameOf('limitMax')} (${values.limitMax})`);
      return { ...values, waitDefaultSeconds, limitDefault };
    },
  }),

  /** What a publish may contain. */
  messages: group<{
    /** Largest message `body`, as JSON bytes. */
    maxBytes: number;
    maxBatch: number;
    /** Seconds a message without `ttl` lives; 0 = forever. */
    ttlDefaultSeconds: number;
    /** Largest `ttl` a publish may ask for. */
    ttlMaxSeconds: number;
  }>({
    settings: {
      maxBytes: integer('MAX_MESSAGE_BYTES', 16, 16 * 1024 * 1024, 64 * 1024),
      maxBatch: integer('MAX_BATCH_MESSAGES', 1, 10_000, 100),
      ttlDefaultSeconds: integer('MESSAGE_TTL_DEFAULT_S', 0, 315_360_000, 0),
      ttlMaxSeconds: integer('MESSAGE_TTL_MAX_S', 1, 315_360_000, 2_592_000),
    },
    finish(values, { problem, nameOf }) {
      if (values.ttlDefaultSeconds > values.ttlMaxSeconds) {
        problem(`${nameOf('ttlDefaultSeconds')} (${values.ttlDefaultSeconds}) must not exceed ${nameOf('ttlMaxSeconds')} (${values.ttlMaxSeconds})`);
      }
      return values;
    },
  }),

  /** Publish rate limits, per process: messages per second (0 = no limit) and bucket size. */
  rateLimit: group<
    { 'perUser.ratePerSecond': number; 'perUser.burst': number; 'perIp.ratePerSecond': number; 'perIp.burst': number },
    { perUser: { ratePerSecond: number; burst: number }; perIp: { ratePerSecond: number; burst: number } }
  >({
    settings: {
      'perUser.ratePerSecond': integer('PUBLISH_RATE_PER_USER', 0, 1_000_000, 100),
      'perUser.burst': integer('PUBLISH_BURST_PER_USER', 1, 10_000_000, 200),
      'perIp.ratePerSecond': integer('PUBLISH_RATE_PER_IP', 0, 1_000_000, 1000),
      'perIp.burst': integer('PUBLISH_BURST_PER_IP', 1, 10_000_000, 2000),
    },
    finish: (values) => ({
      perUser: { ratePerSecond: values['perUser.ratePerSecond'], burst: values['perUser.burst'] },
      perIp: { ratePerSecond: values['perIp.ratePerSecond'], burst: values['perIp.burst'] },
    }),
  }),

  /** Who may do what: the token secret and the publish default. */
  auth: group<
    { jwtSecret?: string; publishDefault?: PublishDefault; clockToleranceSeconds: number },
    {
      /** Undefined means "development secret" (the CLI generates one) or a `verifyToken` hook. */
      jwtSecret: string | undefined;
      /**
       * Seconds a token stays valid after its `exp` (and before its `nbf`): devices in the field
       * often have clocks that are off.
       */
      clockToleranceSeconds: number;
      /** Whom a token without a `pub` claim may publish to: `any` (every mailbox), `none`, or `self`. */
      publishDefault: PublishDefault;
    }
  >({
    settings: {
      jwtSecret: text('GATEWAY_JWT_SECRET', z.string().min(32), (name) => `${name} must be at least 32 characters`),
      publishDefault: oneOf('PUBLISH_DEFAULT', PUBLISH_DEFAULTS as unknown as readonly [PublishDefault, ...PublishDefault[]], true),
      clockToleranceSeconds: integer('JWT_CLOCK_TOLERANCE_S', 0, 86_400, 5),
    },
    // Safe by default where it matters: a production gateway does not let a token that names no
    // recipients write to every mailbox; development keeps today's tokens working unchanged.
    finish: (values, { nodeEnv }) => ({
      jwtSecret: values.jwtSecret,
      publishDefault: values.publishDefault ?? (nodeEnv === 'production' ? 'none' : 'any'),
      clockToleranceSeconds: values.clockToleranceSeconds,
    }),
  }),

  /** The message store: MySQL/MariaDB when MYSQL_URL is set, else SQLite. Shaped as createKnex's options. */
  store: group<{
    mysqlUrl?: string | undefined;
    mysqlPoolMax: number;
    /** Per-statement limit (0 = none): MariaDB max_statement_time, MySQL max_execution_time. */
    mysqlStatementTimeoutMs: number;
    /** How long a query waits for a pooled connection, reconnects included, before a 503. */
    mysqlAcquireTimeoutMs: number;
    mysqlConnectTimeoutMs: number;
    /** Pause between attempts to open a replacement connection after one broke. */
    mysqlReconnectIntervalMs: number;
    sqliteFile: string;
  }>({
    settings: {
      mysqlUrl: url('MYSQL_URL', ['mysql:']),
      mysqlPoolMax: integer('MYSQL_POOL_MAX', 1, 1000, 20),
      mysqlStatementTimeoutMs: integer('MYSQL_STATEMENT_TIMEOUT_MS', 0, 3_600_000, 0),
      mysqlAcquireTimeoutMs: integer('MYSQL_ACQUIRE_TIMEOUT_MS', 100, 600_000, 5_000),
      mysqlConnectTimeoutMs: integer('MYSQL_CONNECT_TIMEOUT_MS', 100, 600_000, 10_000),
      mysqlReconnectIntervalMs: integer('MYSQL_RECONNECT_INTERVAL_MS', 10, 60_000, 200),
      sqliteFile: text('SQLITE_FILE', z.string().min(1), (name) => `${name} must not be empty`, './data/gateway.sqlite'),
    },
    finish: asIs,
  }),

  /** The wake-up bus: Redis, a Redis Cluster, or (neither set) in-process. */
  redis: group<{
    url?: string | undefined;
    /** Namespaces the wake channels, so several gateways can share one Redis. */
    prefix: string;
    /** Set: wake-ups go through this Redis Cluster with sharded pub/sub instead of REDIS_URL. */
    clusterNodes?: Array<{ host: string; port: number }> | undefined;
  }>({
    settings: {
      url: url('REDIS_URL', ['redis:', 'rediss:']),
      prefix: text('REDIS_PREFIX', z.string().regex(/^[A-Za-z0-9:._-]{0,64}$/), (name) => `${name} may contain only letters, digits and : . _ - (64 at most)`, 'lpg:'),
      clusterNodes,
    },
    finish(values, { problem, nameOf }) {
      if (values.url && values.clusterNodes) problem(`set either ${nameOf('url')} (one Redis) or ${nameOf('clusterNodes')} (a Redis Cluster), not both`);
      return values;
    },
  }),

  /** The purge of acked and expired messages, and the trim of topics' histories. */
  retention: group<{
    /** Acked messages older than this are deleted; 0 keeps them forever. */
    ackedHours: number;
    batchSize: number;
    intervalSeconds: number;
    /** Messages a topic keeps (its last ones). */
    topicHistoryMax: number;
    /** Seconds a topic keeps a message. */
    topicHistoryTtlSeconds: number;
  }>({
    settings: {
      ackedHours: integer('RETENTION_ACKED_HOURS', 0, 24 * 3650, 24),
      topicHistoryMax: integer('TOPIC_HISTORY_MAX', 1, 10_000_000, 1000),
      topicHistoryTtlSeconds: integer('TOPIC_HISTORY_TTL_S', 1, 10 * 365 * 86_400, 7 * 86_400),
      batchSize: integer('RETENTION_BATCH_SIZE', 1, 100_000, 1000),
      intervalSeconds: integer('RETENTION_INTERVAL_S', 1, 86_400, 300),
    },
    finish: asIs,
  }),

  /** Who is online, known from the polls. */
  presence: group<{
    /** Seconds a client stays present after its last poll ended; 0 turns presence off. */
    graceSeconds: number;
    /** Members a topic's presence lists; above it, only their count. */
    membersMax: number;
  }>({
    settings: {
      graceSeconds: integer('PRESENCE_GRACE_S', 0, 3600, 15),
      membersMax: integer('PRESENCE_MEMBERS_MAX', 1, 10_000, 100),
    },
    finish: asIs,
  }),

  /** Server-Sent Events streams (GET /v1/stream) and WebSockets (GET /v1/ws). */
  stream: group<{
    /** Seconds between heartbeat comments on an idle stream. */
    heartbeatSeconds: number;
    /** Seconds a stream lasts before the server ends it (the client resumes from its last id). */
    maxSeconds: number;
    /** Bytes a stream may have unsent; a reader further behind is disconnected (it resumes from its position). */
    bufferBytes: number;
    /** Seconds between WebSocket pings; a peer that misses two pongs is closed. */
    wsPingSeconds: number;
  }>({
    settings: {
      heartbeatSeconds: integer('STREAM_HEARTBEAT_S', 1, 3600, 15),
      maxSeconds: integer('STREAM_MAX_S', 1, 86_400, 300),
      bufferBytes: integer('STREAM_BUFFER_BYTES', 1024, 1024 * 1024 * 1024, 1024 * 1024),
      wsPingSeconds: integer('WS_PING_S', 1, 3600, 25),
    },
    finish: asIs,
  }),

  /** The process: how many workers, how much logging. */
  runtime: group<{
    /** Worker processes for `start` (0 = one per core when the store and bus can be shared, else 1). */
    workers: number;
    logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  }>({
    settings: {
      workers: integer('GATEWAY_WORKERS', 0, 1024, 0),
      logLevel: oneOf('LOG_LEVEL', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], false, 'info'),
    },
    finish: asIs,
  }),
};

type Groups = typeof CONFIG_GROUPS;
type GroupName = keyof Groups;
type OutputOf<Name extends GroupName> = ReturnType<Groups[Name]['finish']>;
export type HttpConfig = OutputOf<'http'>;
export type PollConfig = OutputOf<'poll'>;
export type MessagesConfig = OutputOf<'messages'>;
export type RateLimitConfig = OutputOf<'rateLimit'>;
export type AuthConfig = OutputOf<'auth'>;
export type StoreConfig = OutputOf<'store'>;
export type RedisConfig = OutputOf<'redis'>;
export type RetentionConfig = OutputOf<'retention'>;
export type PresenceConfig = OutputOf<'presence'>;
export type StreamConfig = OutputOf<'stream'>;
export type RuntimeConfig = OutputOf<'runtime'>;
export type GatewayConfig = { [Name in GroupName]: OutputOf<Name> };

/** Every environment variable the configuration reads (the README documents each). */
export const ENV_VARIABLES: readonly string[] = Object.freeze(
  Object.values(CONFIG_GROUPS).flatMap((definition) => Object.values(definition.settings as Record<string, Setting<unknown>>).map((setting) => setting.env)),
);

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Validates one group's given values (undefined = unset) with its settings' schemas, then its cross-checks. */
function parseGroup<Name extends GroupName>(name: Name, given: Record<string, unknown>, nameOf: (key: string, setting: Setting<unknown>) => string, nodeEnv: string | undefined, problems: string[]): OutputOf<Name> | undefined {
  const definition = CONFIG_GROUPS[name] as unknown as Group<Record<string, unknown>, OutputOf<Name>>;
  const settings = definition.settings as Record<string, Setting<unknown>>;
  const before = problems.length;
  const values: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(settings)) {
    const value = given[key];
    if (value === undefined) {
      values[key] = setting.fallback;
      continue;
    }
    if (setting.schema.safeParse(value).success) values[key] = value;
    else problems.push(setting.explain(nameOf(key, setting), value));
  }
  if (problems.length > before) return undefined;
  const result = definition.finish(values, { problem: (message) => problems.push(message), nameOf: (key) => nameOf(key, settings[key]!), nodeEnv });
  return problems.length > before ? undefined : result;
}

function parseGroups(read: (name: GroupName, key: string, setting: Setting<unknown>) => unknown, nameOf: (name: GroupName, key: string, setting: Setting<unknown>) => string, nodeEnv: string | undefined): GatewayConfig {
  const problems: string[] = [];
  const config: Partial<Record<GroupName, unknown>> = {};
  for (const name of Object.keys(CONFIG_GROUPS) as GroupName[]) {
    const settings = CONFIG_GROUPS[name].settings as Record<string, Setting<unknown>>;
    const given = Object.fromEntries(Object.entries(settings).map(([key, setting]) => [key, read(name, key, setting)]));
    config[name] = parseGroup(name, given, (key, setting) => nameOf(name, key, setting), nodeEnv, problems);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config as GatewayConfig;
}

/**
 * The configuration from environment variables; a problem names the variable.
 *
 * @example
 * const config = loadConfig(process.env); // throws ConfigError naming each bad variable
 */
export function loadConfig(env: Record<string, string | undefined>): GatewayConfig {
  return parseGroups(
    (_name, _key, setting) => {
      const raw = env[setting.env];
      if (raw === undefined || (setting.emptyIsUnset && raw.trim() === '')) return undefined;
      return setting.fromText(raw);
    },
    (_name, _key, setting) => setting.env,
    env.NODE_ENV,
  );
}

/** Settings given as values, by group, as createGateway takes them; nested groups (rateLimit) as objects. */
export type ConfigInput = { [Name in GroupName]?: Record<string, unknown> | undefined };

/** Keys of `values` that name no setting (a typo would otherwise fall back to a default unnoticed). */
function unknownKeys(path: string, values: unknown, settings: readonly string[]): string[] {
  if (values === undefined) return [];
  if (typeof values !== 'object' || values === null || Array.isArray(values)) return [`${path} must be an object`];
  return Object.entries(values).flatMap(([key, value]) => {
    if (settings.includes(key) || value === undefined) return [];
    const nested = settings.filter((setting) => setting.startsWith(`${key}.`)).map((setting) => setting.slice(key.length + 1));
    return nested.length > 0 ? unknownKeys(`${path}.${key}`, value, nested) : [`${path}.${key} is not a setting`];
  });
}

/**
 * The configuration from values (createGateway's options), through the same schemas and checks as
 * the environment; a problem names the option (`poll.limitMax`). What is left out takes the
 * default its variable has.
 *
 * @example
 * const config = parseConfig({ poll: { waitMaxSeconds: 10 } }, process.env.NODE_ENV); // poll.waitDefaultSeconds follows: 10
 */
export function parseConfig(input: ConfigInput, nodeEnv: string | undefined): GatewayConfig {
  const unknown = Object.entries(input).flatMap(([name, values]) =>
    Object.hasOwn(CONFIG_GROUPS, name) ? unknownKeys(name, values, Object.keys(CONFIG_GROUPS[name as GroupName].settings)) : [`${name} is not a configuration group`],
  );
  if (unknown.length > 0) throw new ConfigError(unknown);
  return parseGroups(
    (name, key) => key.split('.').reduce<unknown>((value, part) => (value as Record<string, unknown> | undefined)?.[part], input[name]),
    (name, key) => `${name}.${key}`,
    nodeEnv,
  );
}
