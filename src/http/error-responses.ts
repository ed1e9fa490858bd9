import type Koa from 'koa';
import { isGatewayError } from '../errors.js';
import { jsonpCallbackOf, renderJsonpError } from './compat/jsonp.js';

export interface ErrorLogger {
  error(object: object, message: string): void;
}

/** Codes for errors Koa or the router raise themselves (http-errors carry a status only). */
const CODE_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  501: 'not_implemented',
  503: 'unavailable',
};

/**
 * The one place errors become responses: `{error: {code, message}}`. Gateway errors keep their
 * code; exposed http-errors get a code from their status; anything else is a logged, generic 500
 * so internals (SQL, stack traces) never reach a client.
 */
export function respondWithErrors(logger: ErrorLogger, options: { isDraining?: () => boolean } = {}): Koa.Middleware {
  const isDraining = options.isDraining ?? (() => false);
  return async function respondWithErrorsMiddleware(ctx, next) {
    try {
      await next();
      if (ctx.body === undefined || ctx.body === null) {
        if (ctx.status === 404) {
          ctx.status = 404;
          ctx.body = { error: { code: 'not_found', message: `No route for ${ctx.method} ${ctx.path}.` } };
        } else if (ctx.status === 405) {
          ctx.body = { error: { code: 'method_not_allowed', message: `${ctx.method} is not allowed on ${ctx.path}.` } };
        }
      }
    } catch (error) {
      let status = 500;
      let code = 'internal_error';
      let message = 'Internal server error.';
      if (isGatewayError(error)) {
        status = error.status;
        code = error.code;
        message = error.message;
        if (error.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(error.retryAfterSeconds));
      } else if (isExposedHttpError(error)) {
        status = error.status;
        code = CODE_BY_STATUS[status] ?? `http_${status}`;
        message = error.message;
      }
      if (status >= 500) {
        logger.error({ err: error, requestId: ctx.state.requestId, method: ctx.method, path: ctx.path, code }, 'request failed');
      }
      // A script tag cannot see a status: JSONP errors are a 200 whose body carries it.
      const callback = jsonpCallbackOf(ctx);
      if (callback !== undefined) {
        renderJsonpError(ctx, callback, { status, code, message });
        return;
      }
      ctx.status = status;
      ctx.type = 'application/json';
      ctx.body = { error: { code, message } };
    } finally {
      // While draining, don't let a keep-alive socket outlive its last response.
      if (isDraining()) ctx.set('Connection', 'close');
    }
  };
}

function isExposedHttpError(error: unknown): error is { status: number; message: string; expose: true } {
  const candidate = error as { status?: unknown; expose?: unknown } | null;
  return typeof candidate?.status === 'number' && candidate.expose === true;
}
