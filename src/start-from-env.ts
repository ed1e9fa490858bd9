import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createTokenIssuer, type TokenIssueOptions } from './auth/tokens.js';
import { createMemoryBus } from './bus/memory-bus.js';
import { createRedisBus } from './bus/redis-bus.js';
import { createRedisClusterBus } from './bus/redis-cluster-bus.js';
import type { Bus } from './bus/types.js';
import { createRedisPresenceRegistry } from './presence/redis-registry.js';
import { createUpgradeListener } from './http/websocket-upgrade.js';
import type { PresenceRegistry } from './presence/types.js';
import { loadConfig, type GatewayConfig, type HttpConfig, type RedisConfig, type StoreConfig } from './config.js';
import type { Engine } from './core/engine.js';
import { createGateway, type Gateway, type GatewayLogger } from './gateway.js';
import { createOpenedResources } from './lifecycle.js';
import { createLogger } from './logger.js';
import type { Retention } from './ops/retention.js';
import { openKnexStore, type KnexStore } from './store/knex/index.js';
import type { Clock } from './core/model.js';

export { createLogger };

// The one place that picks implementations from configuration.

export interface RunningGateway {
  url: string;
  config: GatewayConfig;
  server: Server;
  engine: Engine;
  store: KnexStore;
  bus: Bus;
  logger: Logger;
  /** This gateway's Prometheus registry (served at /metrics). */
  metricsRegistry: Registry;
  /** The acked-message purge timer; undefined when RETENTION_ACKED_HOURS=0. */
  retention: Retention | undefined;
  /** Signs a token with this gateway's secret (`pub` / `scope` claims as in TokenIssueOptions). */
  issueToken(userId: string, options?: TokenIssueOptions): Promise<string>;
  /** Graceful: stop accepting, answer held polls empty, finish in-flight requests, close pools. */
  close(): Promise<void>;
}

/**
 * The store the configuration names: MySQL/MariaDB when MYSQL_URL is set, else SQLite. Migrated
 * and ready; nothing is left open when it cannot start.
 *
 * @example
 * const store = await selectStore(loadConfig(process.env).store);
 */
export function selectStore(config: StoreConfig, dependencies: { clock?: Clock } = {}): Promise<KnexStore> {
  return openKnexStore(config, dependencies);
}

/**
 * startGateway could not open the configured Redis (REDIS_URL) or Redis Cluster
 * (REDIS_CLUSTER_NODES). `cause` is the client's own error (ECONNREFUSED, WRONGPASS, …), not
 * ioredis's "Connection is closed." that follows it.
 *
 * @example
 * try {
 *   await startGateway(process.env);
 * } catch (error) {
 *   if (error instanceof BusConnectError) console.error(`check ${error.variable}: ${error.message}`);
 *   else throw error;
 * }
 */
export class BusConnectError extends Error {
  override name = 'BusConnectError';
  /** The setting that names the unreachable Redis. */
  readonly variable: 'REDIS_URL' | 'REDIS_CLUSTER_NODES';

  constructor(variable: 'REDIS_URL' | 'REDIS_CLUSTER_NODES', cause: unknown) {
    super(`cannot connect to Redis (${variable}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause: withoutCommand(cause) });
    this.variable = variable;
  }
}

/**
 * An ioredis reply error keeps the command it answered; for AUTH (and HELLO) its arguments hold the
 * password from the URL. Dropped before the error travels anywhere it may be printed.
 */
function withoutCommand(error: unknown): unknown {
  if (error instanceof Error && 'command' in error) delete (error as { command?: unknown }).command;
  return error;
}

/**
 * selectBus for startGateway: the errors the client reports while it connects are held back, then
 * logged as before once it is connected, or carried by the BusConnectError it throws otherwise
 * (the first of them says why, where the rejection itself only says "Connection is closed.").
 */
async function openBus(config: RedisConfig, logger: Pick<GatewayLogger, 'warn'>): Promise<Bus> {
  const held: Array<[object, string]> = [];
  let connected = false;
  const heldLogger = {
    warn(object: object, message: string) {
      if (connected) logger.warn(object, message);
      else held.push([object, message]);
    },
  };
  let bus: Bus;
  try {
    bus = await selectBus(config, { logger: heldLogger });
  } catch (error) {
    const reported = held.map(([object]) => (object as { err?: unknown }).err).find((err) => err !== undefined);
    throw new BusConnectError(config.clusterNodes ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL', reported ?? error);
  }
  connected = true;
  for (const [object, message] of held) logger.warn(object, message);
  return bus;
}

/**
 * Connects to the configured Redis or Redis Cluster and disconnects (the in-process bus: nothing to
 * check); throws BusConnectError as startGateway would. `start --workers N` checks this once before
 * forking, instead of every worker failing on it in turn.
 */
export async function checkBusConnection(config: RedisConfig): Promise<void> {
  if (!config.url && !config.clusterNodes) return;
  const bus = await openBus(config, { warn() {} });
  await bus.close();
}

/**
 * The wake-up bus the configuration names: a Redis Cluster (REDIS_CLUSTER_NODES), one Redis
 * (REDIS_URL), or the in-process bus, which reaches this process only.
 *
 * @example
 * const bus = await selectBus(loadConfig(process.env).redis, { logger });
 */
export async function selectBus(config: RedisConfig, dependencies: { logger?: Pick<GatewayLogger, 'warn'> } = {}): Promise<Bus> {
  const { logger } = dependencies;
  if (config.clusterNodes) {
    return createRedisClusterBus({
      nodes: config.clusterNodes,
      prefix: config.prefix,
      connectionName: 'longpoll-gateway',
      onError: (error) => logger?.warn({ err: error }, 'redis cluster bus error'),
    });
  }
  if (config.url) {
    return createRedisBus({ url: config.url, prefix: config.prefix, onError: (error) => logger?.warn({ err: error }, 'redis bus error') });
  }
  return createMemoryBus();
}

/**
 * Where presence meets: the Redis or Redis Cluster the bus uses (same prefix), or undefined for
 * the in-process default.
 *
 * @example
 * const registry = await selectPresenceRegistry(loadConfig(process.env).redis, { logger });
 */
export async function selectPresenceRegistry(config: RedisConfig, dependencies: { logger?: Pick<GatewayLogger, 'warn'> } = {}): Promise<PresenceRegistry | undefined> {
  const onError = (error: unknown) => dependencies.logger?.warn({ err: error }, 'redis presence error');
  if (config.clusterNodes) return createRedisPresenceRegistry({ nodes: config.clusterNodes, prefix: config.prefix, onError });
  if (config.url) return createRedisPresenceRegistry({ url: config.url, prefix: config.prefix, onError });
  return undefined;
}

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), existsSync(join(dirname(fileURLToPath(import.meta.url)), '../package.json')) ? '..' : '../..');

/** Where the development secret of a gateway on `sqliteFile` is kept: beside the database file. */
export function developmentSecretFile(store: Pick<StoreConfig, 'sqliteFile'>): string {
  return join(dirname(resolve(store.sqliteFile)), 'dev-jwt-secret');
}

/**
 * Without GATEWAY_JWT_SECRET the gateway is not open: it makes a random development secret, keeps
 * it next to the SQLite file (so `token` mints tokens this gateway accepts) and says so loudly.
 */
export function resolveJwtSecret(config: Pick<GatewayConfig, 'auth' | 'store'>, env: Record<string, string | undefined>, logger?: Logger): string {
  if (config.auth.jwtSecret) return config.auth.jwtSecret;
  if (env.NODE_ENV === 'production') {
    throw new Error('GATEWAY_JWT_SECRET must be set when NODE_ENV=production');
  }
  if (config.store.sqliteFile === ':memory:') return randomBytes(32).toString('hex');
  const secretFile = developmentSecretFile(config.store);
  if (!existsSync(secretFile)) {
    mkdirSync(dirname(secretFile), { recursive: true });
    writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  }
  logger?.warn(
    { secretFile },
    'GATEWAY_JWT_SECRET is not set: using a generated development secret. Mint tokens with `npm run token -- <user>`; set GATEWAY_JWT_SECRET in production.',
  );
  return readFileSync(secretFile, 'utf8').trim();
}

/**
 * The server in front of a gateway's request listener, tuned for held polls: requests may take a
 * whole poll, headers may not dawdle, and CONNECT is refused like any other method.
 */
function createPollServer(gateway: Pick<Gateway, 'callback' | 'upgrade'>, settings: { http: HttpConfig; pollWaitMaxSeconds: number; workerId?: number | undefined }): Server {
  const { http } = settings;
  // Under `start --workers N` every response names the worker that served it: behind one port a
  // poll may land on any worker, and this is how operators and tests can see which one did.
  const workerHeader = settings.workerId === undefined ? undefined : String(settings.workerId);
  const listener: Gateway['callback'] =
    workerHeader === undefined
      ? gateway.callback
      : (request, response) => {
          response.setHeader('X-Gateway-Worker', workerHeader);
          return gateway.callback(request, response);
        };
  const server = createServer(
    // Node enforces headersTimeout only when it sweeps its connections; its 30 s default sweep
    // would let a slow-loris socket live up to 30 s past the limit.
    { connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(http.headersTimeoutMs / 2))) },
    listener,
  );
  // requestTimeout bounds receiving the request, not holding the response, so held polls are not
  // cut by it; headers must still arrive promptly so slow-loris clients cannot pin sockets.
  // WebSockets (GET /v1/ws) arrive as upgrade requests, which the request listener never sees;
  // they go through the same listener, so their answers name the worker too.
  server.on('upgrade', workerHeader === undefined ? gateway.upgrade : createUpgradeListener(listener));
  server.requestTimeout = (settings.pollWaitMaxSeconds + 30) * 1000;
  server.headersTimeout = http.headersTimeoutMs;
  server.keepAliveTimeout = 5_000;
  // Node hands CONNECT to a 'connect' listener and, without one, drops the socket unanswered;
  // this is not a proxy, so say so like any other refused method.
  server.on('connect', (_request, socket: Duplex) => {
    const body = '{"error":{"code":"method_not_allowed","message":"CONNECT is not supported."}}';
    socket.on('error', () => {});
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
  return server;
}

function listen(server: Server, http: Pick<HttpConfig, 'port' | 'host'>): Promise<string> {
  return new Promise<string>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    // A large backlog: thousands of clients reconnect at once after a restart or a network blip.
    server.listen({ port: http.port, host: http.host, backlog: 4096 }, () => {
      server.off('error', rejectListen);
      const address = server.address() as AddressInfo;
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolveListen(`http://${host}:${address.port}`);
    });
  });
}

/**
 * Graceful: answer held polls empty, let in-flight requests finish (up to the grace period), then
 * close what the gateway holds.
 */
async function drainAndClose(server: Server, gateway: Gateway, shutdownGraceMs: number): Promise<void> {
  const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  gateway.drain();
  // Sockets become idle as their held polls are answered; close them as they do.
  server.closeIdleConnections();
  const sweeper = setInterval(() => server.closeIdleConnections(), 50);
  let graceTimer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolveGrace) => {
    graceTimer = setTimeout(resolveGrace, shutdownGraceMs);
  });
  await Promise.race([closed, grace]);
  clearInterval(sweeper);
  clearTimeout(graceTimer);
  server.closeAllConnections();
  await gateway.close();
}

/**
 * Builds and starts a gateway from an env-like record: the configuration picks the store and the
 * bus, createGateway wires them, and a server listens. When any step fails (a migration, the bus
 * connection, the port in use) everything already started is closed before the error is thrown.
 *
 * @example
 * const gateway = await startGateway({ PORT: '0', SQLITE_FILE: ':memory:', GATEWAY_JWT_SECRET: secret });
 * console.log(gateway.url);
 * await gateway.close();
 */
export async function startGateway(
  env: Record<string, string | undefined> = process.env,
  options: { workerId?: number } = {},
): Promise<RunningGateway> {
  const config = loadConfig(env);
  const logger = createLogger(config.runtime);
  const secret = resolveJwtSecret(config, env, logger);
  const issuer = createTokenIssuer({ secret });

  const opened = createOpenedResources({ onCloseError: (error) => logger.warn({ err: error }, 'closing after a failed start failed') });
  try {
    const store = await selectStore(config.store);
    opened.add(() => store.close());
    const bus = await openBus(config.redis, logger);
    opened.add(() => bus.close());
    const presenceRegistry = config.presence.graceSeconds > 0 ? await selectPresenceRegistry(config.redis, { logger }) : undefined;
    if (presenceRegistry) opened.add(() => presenceRegistry.close());

    const extraMiddleware: Koa.Middleware[] = [];
    if (config.http.demo) {
      // Loaded only when enabled: production gateways never carry the demo's routes.
      const { createDemoMiddleware } = await import('./http/demo.js');
      extraMiddleware.push(
        createDemoMiddleware({
          demoDir: join(PACKAGE_ROOT, 'demo'),
          legacyBundlePath: join(PACKAGE_ROOT, 'dist/client/longpoll.legacy.js'),
          issueToken: (userId, claims) => issuer.issue(userId, { ...claims, expiresInSeconds: 24 * 3600 }),
        }),
      );
    }
    const gateway = await createGateway(
      { store, bus, logger, ...(presenceRegistry ? { presence: presenceRegistry } : {}) },
      {
        auth: { ...config.auth, jwtSecret: secret },
        http: config.http,
        poll: config.poll,
        messages: config.messages,
        rateLimit: config.rateLimit,
        retention: config.retention,
        presence: config.presence,
        stream: config.stream,
        extraMiddleware,
      },
    );
    opened.add(() => gateway.close());

    const server = createPollServer(gateway, { http: config.http, pollWaitMaxSeconds: config.poll.waitMaxSeconds, workerId: options.workerId });
    opened.add(() => {
      server.close();
      server.closeAllConnections();
    });
    const url = await listen(server, config.http);

    let closing: Promise<void> | undefined;
    return {
      url,
      config,
      server,
      engine: gateway.engine,
      store,
      bus,
      logger,
      metricsRegistry: gateway.metricsRegistry,
      retention: gateway.retention,
      issueToken: (userId, issueOptions) => issuer.issue(userId, issueOptions),
      close: () =>
        (closing ??= (async () => {
          await drainAndClose(server, gateway, config.http.shutdownGraceMs);
          await bus.close();
          await presenceRegistry?.close();
          await store.close();
        })()),
    };
  } catch (error) {
    await opened.closeAll();
    throw error;
  }
}
