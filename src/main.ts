import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import { pino, type Logger } from 'pino';
import { createTokenIssuer, createTokenVerifier, type TokenIssueOptions } from './auth/tokens.js';
import { createMemoryBus } from './bus/memory-bus.js';
import { createRedisBus } from './bus/redis-bus.js';
import { createRedisClusterBus } from './bus/redis-cluster-bus.js';
import type { Bus } from './bus/types.js';
import { loadConfig, type GatewayConfig, type RuntimeConfig } from './config.js';
import { createEngine, type Engine } from './core/engine.js';
import { createApp } from './http/app.js';
import { claimsFromBearerToken } from './http/auth.js';
import { Registry } from 'prom-client';
import { createGatewayMetrics } from './ops/metrics.js';
import { createPublishRateLimit } from './ops/rate-limit.js';
import { startRetention, type Retention } from './ops/retention.js';
import { createKnex, createKnexStore } from './store/knex-store.js';
import type { MessageStore } from './store/types.js';

/** The one place that picks implementations from configuration. */

export interface RunningGateway {
  url: string;
  config: GatewayConfig;
  server: Server;
  engine: Engine;
  store: MessageStore;
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

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), existsSync(join(dirname(fileURLToPath(import.meta.url)), '../package.json')) ? '..' : '../..');

/**
 * Without GATEWAY_JWT_SECRET the gateway is not open: it makes a random development secret, keeps
 * it next to the SQLite file (so `token` mints tokens this gateway accepts) and says so loudly.
 */
export function resolveJwtSecret(config: Pick<GatewayConfig, 'auth' | 'store'>, logger?: Logger): string {
  if (config.auth.jwtSecret) return config.auth.jwtSecret;
  if (process.env.NODE_ENV === 'production') {
    throw new Error('GATEWAY_JWT_SECRET must be set when NODE_ENV=production');
  }
  if (config.store.sqliteFile === ':memory:') return randomBytes(32).toString('hex');
  const secretFile = join(dirname(resolve(config.store.sqliteFile)), 'dev-jwt-secret');
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

export function createLogger(config: Pick<RuntimeConfig, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    // Belt and braces: tokens and bodies are never logged on purpose, but redact them if they are.
    redact: ['req.headers.authorization', 'authorization', 'token', 'body'],
  });
}

/**
 * Builds and starts a gateway from an env-like record.
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
  const secret = resolveJwtSecret(config, logger);
  const issuer = createTokenIssuer({ secret });

  const store = await createKnexStore({ knex: createKnex(config.store) });
  let bus: Bus;
  try {
    bus = config.redis.clusterNodes
      ? await createRedisClusterBus({
          nodes: config.redis.clusterNodes,
          prefix: config.redis.prefix,
          connectionName: 'longpoll-gateway',
          onError: (error) => logger.warn({ err: error }, 'redis cluster bus error'),
        })
      : config.redis.url
      ? await createRedisBus({
          url: config.redis.url,
          prefix: config.redis.prefix,
          onError: (error) => logger.warn({ err: error }, 'redis bus error'),
        })
      : createMemoryBus();
  } catch (error) {
    await store.close();
    throw error;
  }
  // Per gateway, never prom-client's global registry: several gateways in one process (tests) must
  // not share or double-register metrics.
  const metricsRegistry = new Registry();
  let engineRef: Engine | undefined;
  const metrics = createGatewayMetrics(metricsRegistry, {
    heldPolls: () => engineRef?.heldPolls ?? 0,
    busHealthy: () => bus.healthy,
    pingStore: () => store.ping(),
  });
  const engine = createEngine(
    { store, bus },
    {
      maxPollsPerUser: config.poll.maxPerUser,
      maxHeldPolls: config.poll.maxHeld,
      onError: (error, context) => logger.warn({ err: error, context }, 'engine background error'),
      observer: metrics.observer,
    },
  );
  engineRef = engine;
  const publishRateLimit = createPublishRateLimit(
    {},
    config.rateLimit,
  );
  const retention =
    config.retention.ackedHours > 0
      ? startRetention(
          { store },
          {
            maxAckedAgeMs: config.retention.ackedHours * 3_600_000,
            batchSize: config.retention.batchSize,
            intervalMs: config.retention.intervalSeconds * 1000,
            onPurged: (count, expired) => {
              metrics.purged(count, expired);
              if (count > 0) logger.info({ count, expired }, 'retention purged acked and expired messages');
            },
            onError: (error) => logger.warn({ err: error }, 'retention run failed'),
          },
        )
      : undefined;

  let draining = false;
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
  const app = createApp(
    {
      engine,
      resolveClaims: claimsFromBearerToken(createTokenVerifier({ secret })),
      readiness: [
        { name: 'store', check: () => store.ping() },
        { name: 'bus', check: () => bus.ping() },
      ],
      logger,
      isDraining: () => draining,
      metrics,
      publishAdmission: {
        admit(userId, ip, messages) {
          const refusal = publishRateLimit.admit(userId, ip, messages);
          if (refusal) metrics.rateLimited(refusal.scope);
          return refusal;
        },
      },
    },
    { ...config.http, poll: config.poll, messages: config.messages, publishDefault: config.auth.publishDefault, extraMiddleware },
  );

  const handleRequest = app.callback();
  // Under `start --workers N` every response names the worker that served it: behind one port a
  // poll may land on any worker, and this is how operators and tests can see which one did.
  const workerHeader = options.workerId === undefined ? undefined : String(options.workerId);
  const server = createServer(
    // Node enforces headersTimeout only when it sweeps its connections; its 30 s default sweep
    // would let a slow-loris socket live up to 30 s past the limit.
    { connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(config.http.headersTimeoutMs / 2))) },
    workerHeader === undefined
      ? handleRequest
      : (request, response) => {
          response.setHeader('X-Gateway-Worker', workerHeader);
          return handleRequest(request, response);
        },
  );
  // requestTimeout bounds receiving the request, not holding the response, so held polls are not
  // cut by it; headers must still arrive promptly so slow-loris clients cannot pin sockets.
  server.requestTimeout = (config.poll.waitMaxSeconds + 30) * 1000;
  server.headersTimeout = config.http.headersTimeoutMs;
  server.keepAliveTimeout = 5_000;
  // Node hands CONNECT to a 'connect' listener and, without one, drops the socket unanswered;
  // this is not a proxy, so say so like any other refused method.
  server.on('connect', (_request, socket: import('node:stream').Duplex) => {
    const body = '{"error":{"code":"method_not_allowed","message":"CONNECT is not supported."}}';
    socket.on('error', () => {});
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });

  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    // A large backlog: thousands of clients reconnect at once after a restart or a network blip.
    server.listen({ port: config.http.port, host: config.http.host, backlog: 4096 }, () => {
      server.off('error', rejectListen);
      resolveListen();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    closing ??= (async () => {
      draining = true;
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      engine.drain();
      // Sockets become idle as their held polls are answered; close them as they do.
      server.closeIdleConnections();
      const sweeper = setInterval(() => server.closeIdleConnections(), 50);
      let graceTimer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolveGrace) => {
        graceTimer = setTimeout(resolveGrace, config.http.shutdownGraceMs);
      });
      await Promise.race([closed, grace]);
      clearInterval(sweeper);
      clearTimeout(graceTimer);
      server.closeAllConnections();
      await retention?.stop();
      await bus.close();
      await store.close();
    })();
    return closing;
  }

  return {
    url,
    config,
    server,
    engine,
    store,
    bus,
    logger,
    metricsRegistry,
    retention,
    issueToken: (userId, options) => issuer.issue(userId, options),
    close,
  };
}
