import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import { createPublishPolicy, type PublishDefault } from '../auth/publish-policy.js';
import type { Engine } from '../core/engine.js';
import { GatewayError } from '../errors.js';
import { authenticate, type ClaimsResolver } from './auth.js';
import { corsAllowList } from './compat/cors.js';
import { jsonpPolling } from './compat/jsonp.js';
import { methodOverride, routerMethods } from './compat/method-override.js';
import { respondWithErrors } from './error-responses.js';
import { registerHealthRoutes, type ReadinessCheck } from './routes/health.js';
import { registerMailboxRoutes } from './routes/mailbox.js';
import { registerMessageRoutes, type MessageLimits, type PublishAdmission } from './routes/messages.js';
import { registerMetricsRoute, type MetricsEndpoint } from './routes/metrics.js';
import { registerPollRoutes, type PollRouteOptions } from './routes/poll.js';
import { registerPresenceRoutes } from './routes/presence.js';
import { registerStreamRoutes } from './routes/stream.js';
import { registerWebSocketRoute } from './routes/websocket.js';
import type { PresenceTracker } from '../presence/tracker.js';

export interface AppLogger {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
  /** pino's; when absent every request is logged. */
  isLevelEnabled?(level: string): boolean;
}

export interface AppOptions {
  poll: PollRouteOptions;
  messages: MessageLimits;
  /** PRESENCE_MEMBERS_MAX (default 100). */
  presenceMembersMax?: number;
  /** STREAM_HEARTBEAT_S, STREAM_MAX_S, STREAM_BUFFER_BYTES (defaults 15, 300, 1 MiB). */
  stream?: { heartbeatSeconds: number; maxSeconds: number; bufferBytes: number; wsPingSeconds: number };
  /** MAX_HELD_POLLS, which streams count against too (default 50,000). */
  maxHeldPolls?: number;
  /** Recipients of a token without a `pub` claim (PUBLISH_DEFAULT). */
  publishDefault: PublishDefault;
  /** Extra middleware mounted before the API (e.g. the demo pages). */
  extraMiddleware?: Koa.Middleware[];
  /** Bearer token required on GET /metrics; unset = open (bind to a private address). */
  metricsToken?: string | undefined;
  /** CORS allow-list (`CORS_ORIGINS`); empty = same origin only. */
  corsOrigins?: string[];
  corsMaxAgeSeconds?: number;
  /** TRUST_PROXY: read the client address from X-Forwarded-For (last hop only). */
  trustProxy?: boolean;
  /**
   * JSONP, the method override and text/plain bodies (requests a browser sends cross-site without
   * a preflight). Default true; createGateway turns them off when cookies may authenticate.
   */
  simpleRequests?: boolean;
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The router answers a method it has never heard of (TRACE, PRI, made-up ones) with a bare 501: a
 * 5xx that blames the server for a client's request. Refuse them as a 405 like any other method.
 */
function refuseUnknownMethods(ctx: Koa.Context, next: Koa.Next): Promise<void> {
  if (!KNOWN_METHODS.has(ctx.method)) {
    throw new GatewayError('method_not_allowed', 'This method is not supported.');
  }
  return next();
}

/**
 * The HTTP layer: routing, validation and error shapes only. It talks to the engine and the token
 * verifier, never to SQL or Redis directly.
 *
 * @example
 * const app = createApp({ engine, resolveClaims: claimsFromBearerToken(verifier), readiness: [], logger, isDraining: () => false }, options);
 * http.createServer(app.callback()).listen(8080);
 */
export function createApp(
  dependencies: {
    engine: Engine;
    /**
     * Who is calling: claimsFromBearerToken(verifier) for the gateway's JWTs, claimsFromHost(hook)
     * for an embedding application's sessions. The app never sees a secret.
     */
    resolveClaims: ClaimsResolver;
    readiness: ReadinessCheck[];
    logger: AppLogger;
    isDraining: () => boolean;
    /** Serves GET /metrics when given. */
    metrics?: MetricsEndpoint;
    /** Publish rate limits; none when absent. */
    publishAdmission?: PublishAdmission;
    /** Answers the presence queries; absent = presence is off (404). */
    presence?: PresenceTracker;
  },
  options: AppOptions,
): Koa {
  const { engine, logger } = dependencies;
  // Behind our own reverse proxy every request comes from the proxy's address, which would make the
  // per-IP publish limit one bucket for everybody. Only the last X-Forwarded-For hop is trusted: it
  // is the one our proxy appended; earlier hops are whatever the client claimed.
  const app = new Koa({ proxy: options.trustProxy ?? false, maxIpsCount: 1 });
  // Errors are logged by respondWithErrors; Koa's default handler would print them again.
  app.silent = true;

  const logsRequests = logger.isLevelEnabled?.('info') ?? true;
  app.use(function assignRequestId(ctx, next) {
    const incoming = ctx.get('X-Request-Id');
    ctx.state.requestId = /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    // Logged when the response finishes instead of after awaiting `next()`: no suspended frame for
    // each held poll, and no work at all while info logging is off.
    if (logsRequests) {
      const started = performance.now();
      ctx.res.once('finish', () => {
        // ctx.path, never ctx.url: the query may hold an access token.
        logger.info(
          { requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(performance.now() - started) },
          'request',
        );
      });
    }
    return next();
  });
  app.use(respondWithErrors(logger, { isDraining: dependencies.isDraining }));
  app.use(refuseUnknownMethods);
  // Legacy and proxy compatibility: CORS headers go on error answers too; the method override runs
  // before routing; JSONP marks requests whose errors respondWithErrors must render as script.
  const apiMethods = () => routerMethods([apiRoutes]);
  app.use(corsAllowList({ origins: options.corsOrigins ?? [], maxAgeSeconds: options.corsMaxAgeSeconds ?? 600, allowedMethods: apiMethods }));
  if (options.simpleRequests === false) {
    app.use(function jsonBodiesOnly(ctx, next) {
      ctx.state.jsonBodiesOnly = true;
      return next();
    });
  } else {
    app.use(methodOverride({ allowedMethods: apiMethods }));
    app.use(jsonpPolling({ paths: ['/v1/poll'] }));
  }

  for (const middleware of options.extraMiddleware ?? []) app.use(middleware);

  const publicRoutes = new Router();
  registerHealthRoutes(publicRoutes, dependencies.readiness, dependencies.isDraining);
  if (dependencies.metrics) registerMetricsRoute(publicRoutes, dependencies.metrics, options.metricsToken);
  app.use(publicRoutes.routes());
  app.use(publicRoutes.allowedMethods());

  const apiRoutes = new Router();
  // Also the scope check: /v1/messages… needs `publish`, presence queries check their own, every other /v1 route `poll` (scopeForPath).
  apiRoutes.use('/v1', authenticate(dependencies.resolveClaims));
  registerMessageRoutes(apiRoutes, engine, { limits: options.messages, publishDefault: options.publishDefault }, dependencies.publishAdmission);
  registerPollRoutes(apiRoutes, engine, options.poll);
  const stream = options.stream ?? { heartbeatSeconds: 15, maxSeconds: 300, bufferBytes: 1024 * 1024, wsPingSeconds: 25 };
  registerStreamRoutes(apiRoutes, engine, {
    ...stream,
    limitDefault: options.poll.limitDefault,
    limitMax: options.poll.limitMax,
    topicsMax: options.poll.topicsMax,
    maxHeld: options.maxHeldPolls ?? 50_000,
    isDraining: dependencies.isDraining,
    onError: (error) => logger.error({ err: error }, 'stream failed'),
  });
  registerWebSocketRoute(apiRoutes, engine, {
    limitDefault: options.poll.limitDefault,
    limitMax: options.poll.limitMax,
    topicsMax: options.poll.topicsMax,
    maxHeld: options.maxHeldPolls ?? 50_000,
    bufferBytes: stream.bufferBytes,
    pingSeconds: stream.wsPingSeconds,
    corsOrigins: options.corsOrigins ?? [],
    isDraining: dependencies.isDraining,
    onError: (error) => logger.error({ err: error }, 'websocket failed'),
  });
  registerMailboxRoutes(apiRoutes, engine);
  const presencePolicy = createPublishPolicy({ publishDefault: options.publishDefault });
  registerPresenceRoutes(apiRoutes, dependencies.presence, { membersMax: options.presenceMembersMax ?? 100, mayPublishTo: presencePolicy.mayPublishTo });
  app.use(apiRoutes.routes());
  app.use(apiRoutes.allowedMethods());
  return app;
}
