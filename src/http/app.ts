import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import type { TokenVerifier } from '../auth/tokens.js';
import type { Engine } from '../core/engine.js';
import { authenticate } from './auth.js';
import { respondWithErrors } from './error-responses.js';
import { registerHealthRoutes, type ReadinessCheck } from './routes/health.js';
import { registerMessageRoutes, type MessageRouteOptions } from './routes/messages.js';
import { registerPollRoutes, type PollRouteOptions } from './routes/poll.js';

export interface AppLogger {
  info(object: object, message: string): void;
  error(object: object, message: string): void;
}

export interface AppOptions extends MessageRouteOptions, PollRouteOptions {
  /** Extra middleware mounted before the API (e.g. the demo pages). */
  extraMiddleware?: Koa.Middleware[];
}

/**
 * The HTTP layer: routing, validation and error shapes only. It talks to the engine and the token
 * verifier, never to SQL or Redis directly.
 *
 * @example
 * const app = createApp({ engine, verifier, readiness: [], logger, isDraining: () => false }, options);
 * http.createServer(app.callback()).listen(8080);
 */
export function createApp(
  dependencies: {
    engine: Engine;
    verifier: TokenVerifier;
    readiness: ReadinessCheck[];
    logger: AppLogger;
    isDraining: () => boolean;
  },
  options: AppOptions,
): Koa {
  const { engine, verifier, logger } = dependencies;
  const app = new Koa({ proxy: false });
  // Errors are logged by respondWithErrors; Koa's default handler would print them again.
  app.silent = true;

  app.use(async function assignRequestId(ctx, next) {
    const incoming = ctx.get('X-Request-Id');
    ctx.state.requestId = /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    ctx.set('X-Request-Id', ctx.state.requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      // While draining, don't let a keep-alive socket outlive its last response.
      if (dependencies.isDraining()) ctx.set('Connection', 'close');
      // ctx.path, never ctx.url: the query may hold an access token.
      logger.info(
        { requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(performance.now() - started) },
        'request',
      );
    }
  });
  app.use(respondWithErrors(logger));

  for (const middleware of options.extraMiddleware ?? []) app.use(middleware);

  const publicRoutes = new Router();
  registerHealthRoutes(publicRoutes, dependencies.readiness, dependencies.isDraining);
  app.use(publicRoutes.routes());
  app.use(publicRoutes.allowedMethods());

  const apiRoutes = new Router();
  apiRoutes.use('/v1', authenticate(verifier));
  registerMessageRoutes(apiRoutes, engine, options);
  registerPollRoutes(apiRoutes, engine, options);
  app.use(apiRoutes.routes());
  app.use(apiRoutes.allowedMethods());
  return app;
}
