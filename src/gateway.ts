import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createUpgradeListener } from './http/websocket-upgrade.js';
import type Koa from 'koa';
import { Registry } from 'prom-client';
import type { VerifyToken } from './auth/claims.js';
import { createTokenVerifier } from './auth/tokens.js';
import { createMemoryBus } from './bus/memory-bus.js';
import type { Bus } from './bus/types.js';
import { parseConfig, type AuthConfig, type HttpConfig, type MessagesConfig, type PollConfig, type PresenceConfig, type RateLimitConfig, type RetentionConfig, type StreamConfig } from './config.js';
import { createMemoryPresenceRegistry } from './presence/memory-registry.js';
import { createPresenceTracker, type PresenceTracker } from './presence/tracker.js';
import type { PresenceRegistry } from './presence/types.js';
import { createEngine, type Engine } from './core/engine.js';
import { createApp, type AppLogger } from './http/app.js';
import { claimsFromBearerToken, claimsFromHost } from './http/auth.js';
import { createOpenedResources } from './lifecycle.js';
import { createLogger } from './logger.js';
import { createGatewayMetrics } from './ops/metrics.js';
import { createPublishRateLimit } from './ops/rate-limit.js';
import { startRetention, type Retention } from './ops/retention.js';
import { openKnexStore } from './store/knex/index.js';
import type { Clock } from './core/model.js';
import type { MessageStore, RetentionStore } from './store/types.js';

/** What the gateway logs through; a pino logger is one. */
export interface GatewayLogger extends AppLogger {
  warn(object: object, message: string): void;
}

/**
 * The swappable parts. A part passed in stays the caller's: close() leaves it open. A part left
 * out is made here (SQLite in memory, the in-process bus) and closed by close().
 */
export interface GatewayParts<Store extends MessageStore & RetentionStore = MessageStore & RetentionStore> {
  store?: Store;
  bus?: Bus;
  /**
   * Where presence meets across processes: createRedisPresenceRegistry on the bus's Redis and
   * prefix for several processes; default in this process only.
   */
  presence?: PresenceRegistry;
  /** Default: warnings and errors as JSON lines on stdout (pino). */
  logger?: GatewayLogger;
  clock?: Clock;
}

export interface GatewayOptions {
  /**
   * Authenticates API requests with the host application's own sessions instead of JWTs: it sees
   * the request's headers and resolves the caller's `{subject, pub?, scope?}`, or null for a 401
   * `unauthenticated`. Give either this or `auth.jwtSecret`.
   */
  verifyToken?: VerifyToken;
  /** `jwtSecret`: verify the gateway's own HS256 tokens. `publishDefault`: see PUBLISH_DEFAULT. */
  auth?: Partial<AuthConfig>;
  http?: Partial<Pick<HttpConfig, 'trustProxy' | 'corsOrigins' | 'corsMaxAgeSeconds' | 'metricsToken'>>;
  poll?: Partial<PollConfig>;
  messages?: Partial<MessagesConfig>;
  rateLimit?: Partial<RateLimitConfig>;
  /** `ackedHours: 0` starts no purge timer. */
  retention?: Partial<RetentionConfig>;
  /** `graceSeconds: 0` turns presence off. */
  presence?: Partial<PresenceConfig>;
  /** GET /v1/stream (Server-Sent Events): heartbeat, lifetime and send buffer. */
  stream?: Partial<StreamConfig>;
  /** Mounted before the API routes (the CLI mounts the demo pages here). */
  extraMiddleware?: Koa.Middleware[];
  /**
   * JSONP polls, the `_method` override and text/plain bodies: what old browsers need, and also
   * what a page on another site can send with the user's cookies (no preflight). On by default
   * with the gateway's JWTs, which a browser never attaches by itself; off by default with a
   * `verifyToken` hook, which may authenticate from a cookie. Turn it on with a hook only when the
   * hook authenticates from the request's `token`, never from cookies.
   */
  simpleRequests?: boolean;
}

export interface Gateway<Store extends MessageStore & RetentionStore = MessageStore & RetentionStore> {
  /** The Koa app: mount it, or serve `callback`. */
  app: Koa;
  /** A node:http request listener for this gateway. */
  callback: (request: IncomingMessage, response: ServerResponse) => Promise<void>;
  /** A node:http 'upgrade' listener: WebSockets at GET /v1/ws (`server.on('upgrade', gateway.upgrade)`). */
  upgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  engine: Engine;
  store: Store;
  bus: Bus;
  /** This gateway's Prometheus registry (served at /metrics). */
  metricsRegistry: Registry;
  /** Who is online here (undefined when presence is off). */
  presence: PresenceTracker | undefined;
  /** The retention timer: purges acked and expired messages (unless `retention.ackedHours` is 0) and trims topics. */
  retention: Retention;
  /**
   * The first step of a shutdown: answers every held poll empty, makes later polls short and asks
   * clients to close their connections, so a server in front of this gateway can close soon after.
   */
  drain(): void;
  /** Drains, stops the purge timer and closes the parts createGateway made itself. */
  close(): Promise<void>;
}

/**
 * A gateway without a server: the Koa app, its request listener and the engine, on the parts
 * given (or in-memory defaults). Serve `callback` from any node:http server, or mount `app`.
 * Settings left out take the defaults of the environment variables the README lists (PUBLISH_DEFAULT
 * included: `none` when NODE_ENV=production, else `any`).
 *
 * @example
 * const gateway = await createGateway({}, { auth: { jwtSecret: process.env.GATEWAY_JWT_SECRET } });
 * const server = http.createServer(gateway.callback).listen(8080);
 * server.on('upgrade', gateway.upgrade); // WebSockets at /v1/ws
 * // on shutdown: gateway.drain(); server.close(); await gateway.close();
 *
 * @example
 * // On MySQL + Redis, authenticating with the host's own sessions:
 * const store = await createKnexStore({ knex: createKnex({ mysqlUrl: process.env.MYSQL_URL }) });
 * const bus = await createRedisBus({ url: process.env.REDIS_URL!, prefix: 'chat:' });
 * const gateway = await createGateway({ store, bus }, {
 *   verifyToken: async ({ headers }) => sessions.userFor(headers.cookie) ?? null,
 * });
 */
export async function createGateway<Store extends MessageStore & RetentionStore = MessageStore & RetentionStore>(
  parts: GatewayParts<Store> = {},
  options: GatewayOptions = {},
): Promise<Gateway<Store>> {
  // The same schemas and checks as the environment's: an invalid option is a ConfigError naming it.
  const { poll, messages, auth, retention: retentionSettings, http, rateLimit, presence: presenceSettings, stream } = parseConfig(
    {
      poll: options.poll,
      messages: options.messages,
      auth: options.auth,
      retention: options.retention,
      http: options.http,
      rateLimit: options.rateLimit,
      presence: options.presence,
      stream: options.stream,
    },
    process.env.NODE_ENV,
  );
  if ((options.verifyToken === undefined) === (auth.jwtSecret === undefined)) {
    throw new TypeError('Expected either `verifyToken` or `auth.jwtSecret` (not both): how API requests are authenticated');
  }
  if (options.verifyToken !== undefined && typeof options.verifyToken !== 'function') throw new TypeError('Expected `verifyToken` to be a function');
  const logger = parts.logger ?? createLogger({ logLevel: 'warn' });
  const clock = parts.clock;

  const opened = createOpenedResources({ onCloseError: (error) => logger.warn({ err: error }, 'closing after a failed start failed') });
  try {
    const store = parts.store ?? ((await openKnexStore({ sqliteFile: ':memory:' }, clock ? { clock } : {})) as unknown as Store);
    if (!parts.store) opened.add(() => store.close());
    const bus = parts.bus ?? createMemoryBus();
    if (!parts.bus) opened.add(() => bus.close());

    // Per gateway, never prom-client's global registry: several gateways in one process (tests,
    // a host with two) must not share or double-register metrics.
    const metricsRegistry = new Registry();
    let engineRef: Engine | undefined;
    let presenceRef: PresenceTracker | undefined;
    const metrics = createGatewayMetrics(metricsRegistry, {
      heldPolls: () => engineRef?.heldPolls ?? 0,
      presenceEntries: () => presenceRef?.localEntries ?? 0,
      busHealthy: () => bus.healthy,
      pingStore: () => store.ping(),
      ...(clock ? { clock } : {}),
    });
    let presence: PresenceTracker | undefined;
    if (presenceSettings.graceSeconds > 0) {
      const registry = parts.presence ?? createMemoryPresenceRegistry();
      if (!parts.presence) opened.add(() => registry.close());
      presence = createPresenceTracker(
        { registry, ...(clock ? { clock } : {}) },
        {
          graceMs: presenceSettings.graceSeconds * 1000,
          onEvents: (events) => engineRef?.announcePresence(events),
          onError: (error, context) => logger.warn({ err: error, context }, 'presence background error'),
        },
      );
      const tracker = presence;
      presenceRef = tracker;
      opened.add(() => tracker.close());
    }
    const engine = createEngine(
      { store, bus, ...(clock ? { clock } : {}), ...(presence ? { presence } : {}) },
      {
        maxPollsPerUser: poll.maxPerUser,
        maxHeldPolls: poll.maxHeld,
        onError: (error, context) => logger.warn({ err: error, context }, 'engine background error'),
        observer: metrics.observer,
      },
    );
    engineRef = engine;
    let draining = false;
    const drain = () => {
      draining = true;
      engine.drain();
    };
    opened.add(drain);
    const publishRateLimit = createPublishRateLimit(clock ? { clock } : {}, rateLimit);

    const app = createApp(
      {
        engine,
        resolveClaims: options.verifyToken ? claimsFromHost(options.verifyToken) : claimsFromBearerToken(createTokenVerifier({ secret: auth.jwtSecret!, clockToleranceSeconds: auth.clockToleranceSeconds })),
        readiness: [
          { name: 'store', check: () => store.ping() },
          { name: 'bus', check: () => bus.ping() },
        ],
        logger,
        isDraining: () => draining,
        metrics,
        ...(presence ? { presence } : {}),
        publishAdmission: {
          admit(userId, ip, count) {
            const refusal = publishRateLimit.admit(userId, ip, count);
            if (refusal) metrics.rateLimited(refusal.scope);
            return refusal;
          },
        },
      },
      {
        poll,
        messages,
        presenceMembersMax: presenceSettings.membersMax,
        stream,
        maxHeldPolls: poll.maxHeld,
        publishDefault: auth.publishDefault,
        trustProxy: http.trustProxy,
        corsOrigins: http.corsOrigins,
        corsMaxAgeSeconds: http.corsMaxAgeSeconds,
        metricsToken: http.metricsToken,
        simpleRequests: options.simpleRequests ?? options.verifyToken === undefined,
        ...(options.extraMiddleware ? { extraMiddleware: options.extraMiddleware } : {}),
      },
    );

    // Started last: nothing after it can fail, so a failed start never leaves the timer running.
    const retention = startRetention(
      { store, ...(clock ? { clock } : {}) },
      {
        maxAckedAgeMs: retentionSettings.ackedHours > 0 ? retentionSettings.ackedHours * 3_600_000 : undefined,
        topicHistory: { max: retentionSettings.topicHistoryMax, maxAgeMs: retentionSettings.topicHistoryTtlSeconds * 1000 },
        batchSize: retentionSettings.batchSize,
        intervalMs: retentionSettings.intervalSeconds * 1000,
        onPurged: (count, expired, trimmed) => {
          metrics.purged(count, expired, trimmed);
          if (count > 0) logger.info({ count, expired, trimmed }, 'retention purged acked and expired messages and trimmed topics');
        },
        onError: (error) => logger.warn({ err: error }, 'retention run failed'),
      },
    );
    opened.add(() => retention.stop());

    let closing: Promise<void> | undefined;
    const callback = app.callback() as Gateway['callback'];
    return {
      app,
      callback,
      upgrade: createUpgradeListener(callback),
      engine,
      store,
      bus,
      metricsRegistry,
      presence,
      retention,
      drain,
      close: () => (closing ??= opened.closeAll()),
    };
  } catch (error) {
    await opened.closeAll();
    throw error;
  }
}
