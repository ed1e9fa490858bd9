import type Koa from 'koa';
import { ERROR_STATUS, type ErrorCode } from '../error-codes.js';
import { isGatewayError } from '../errors.js';
import { jsonpCallbackOf, renderJsonpError } from './compat/jsonp.js';

export interface ErrorLogger {
  error(object: object, message: string): void;
}

/**
 * Koa and the router raise http-errors that carry a status but no code; they are answered with the
 * table's general code for that status. Typed against ERROR_STATUS, so every code answered here is
 * a documented one; another 4xx becomes a 400 `invalid_request`, another 5xx a logged 500.
 */
export const CODE_FOR_HTTP_ERROR_STATUS: Readonly<Partial<Record<number, ErrorCode>>> = {
  400: 'invalid_request',
  401: 'invalid_token',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
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
      let code: ErrorCode = 'internal_error';
      let message = 'Internal server error.';
      if (isGatewayError(error)) {
        status = error.status;
        code = error.code;
        message = error.message;
        if (error.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(error.retryAfterSeconds));
      } else if (isExposedHttpError(error) && error.status < 500) {
        // A client error stays one: a 4xx the table has no code for (a host's 422, say) is a 400.
        code = CODE_FOR_HTTP_ERROR_STATUS[error.status] ?? 'invalid_request';
        status = ERROR_STATUS[code];
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
