import type Koa from 'koa';
import { GatewayError } from '../../errors.js';

/**
 * JSONP callback-polling for browsers that can only reach another origin through a `<script>` tag.
 *
 * Only `GET /v1/poll` speaks JSONP: publishing and acking change state, and a script tag must never
 * be able to do that (any page could embed it). A script tag cannot read status codes, so a JSONP
 * answer is always 200 and errors travel in the body as `{error: {code, message}, status}`.
 */

/** Dotted identifier path, e.g. `onPoll`, `app.inbox.receive`, `$jq_123`. */
const CALLBACK_PATTERN = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;
export const MAX_CALLBACK_LENGTH = 64;

export interface JsonpOptions {
  /** Paths (GET/HEAD only) that answer JSONP when `callback` is given. */
  paths: string[];
}

/**
 * Validates a `callback` query value. The rejection never echoes the value: reflecting attacker
 * input into an error is exactly the injection JSONP endpoints are known for.
 */
export function parseJsonpCallback(raw: string | string[] | undefined): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_CALLBACK_LENGTH || !CALLBACK_PATTERN.test(raw)) {
    throw new GatewayError(
      'invalid_callback',
      `\`callback\` must be given once and be a JavaScript identifier path (ASCII letters, digits, _ and $, dot-separated, no part starting with a digit) of at most ${MAX_CALLBACK_LENGTH} characters.`,
    );
  }
  return raw;
}

/**
 * U+2028 / U+2029 are legal inside JSON strings but end a line in pre-ES2019 JavaScript, which
 * would break the script on exactly the old browsers JSONP is for. They can only occur inside
 * strings in JSON text, so escaping them there keeps the value identical.
 */
function escapeLineSeparators(json: string): string {
  return json.replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/**
 * Writes `callback(payload);` as the response. The leading empty comment keeps the first bytes
 * out of attacker control (the Rosetta Flash class of attacks needs them).
 */
export function renderJsonp(ctx: Koa.Context, callback: string, payloadJson: string): void {
  ctx.status = 200;
  ctx.type = 'application/javascript; charset=utf-8';
  ctx.set('X-Content-Type-Options', 'nosniff');
  // Script responses are cached by browsers and proxies as eagerly as any GET.
  ctx.set('Cache-Control', 'no-store, no-cache, must-revalidate');
  ctx.set('Pragma', 'no-cache');
  ctx.set('Expires', '0');
  ctx.body = `/**/${callback}(${escapeLineSeparators(payloadJson)});`;
}

/** The JSONP shape of an error: the status a JSON client would have seen moves into the body. */
export function renderJsonpError(ctx: Koa.Context, callback: string, error: { status: number; code: string; message: string }): void {
  renderJsonp(ctx, callback, JSON.stringify({ error: { code: error.code, message: error.message }, status: error.status }));
}

/** The validated callback of a JSONP request, set by jsonpPolling; undefined for plain JSON. */
export function jsonpCallbackOf(ctx: Koa.Context): string | undefined {
  const callback: unknown = ctx.state.jsonpCallback;
  return typeof callback === 'string' ? callback : undefined;
}

/**
 * Marks valid JSONP requests (`ctx.state.jsonpCallback`) and wraps their JSON answer. Errors are
 * wrapped by respondWithErrors, which sees the marker; an invalid callback is a plain JSON 400
 * because there is no safe name to call.
 *
 * @example
 * app.use(respondWithErrors(logger));
 * app.use(jsonpPolling({ paths: ['/v1/poll'] }));
 */
export function jsonpPolling(options: JsonpOptions): Koa.Middleware {
  const paths = new Set(options.paths);
  return async function jsonpPollingMiddleware(ctx, next) {
    if (!(ctx.method === 'GET' || ctx.method === 'HEAD') || !paths.has(ctx.path) || !('callback' in ctx.query)) {
      return next();
    }
    // Also on the JSON 400 below: a browser must not run an error document as script.
    ctx.set('X-Content-Type-Options', 'nosniff');
    const callback = parseJsonpCallback(ctx.query.callback);
    ctx.state.jsonpCallback = callback;
    await next();
    if (ctx.status !== 200 || ctx.body === undefined || ctx.body === null) return;
    const json = typeof ctx.body === 'string' ? ctx.body : JSON.stringify(ctx.body);
    renderJsonp(ctx, callback, json);
  };
}
