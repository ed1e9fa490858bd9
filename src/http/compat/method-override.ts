import type Koa from 'koa';
import { GatewayError } from '../../errors.js';

/**
 * Method override for proxies and old clients that only pass GET and POST: a POST may carry the
 * method it stands for in `X-HTTP-Method-Override` or `?_method=`.
 *
 * Only POST may be overridden: a GET must stay safe, since links, prefetchers and script tags
 * send GETs nobody asked for. And only to a method some API route answers, so an override can
 * never reach anything a direct request could not. Today that is GET (`POST /v1/poll?_method=GET`
 * keeps a poll away from caches that store GETs).
 */
export interface MethodOverrideOptions {
  /** Methods an override may name, evaluated per request (the routes the API actually has). */
  allowedMethods: () => Iterable<string>;
}

const HEADER = 'X-HTTP-Method-Override';
const QUERY = '_method';

function requestedOverride(ctx: Koa.Context): string | undefined {
  const fromHeader = ctx.get(HEADER).trim();
  const fromQuery = ctx.query[QUERY];
  if (Array.isArray(fromQuery)) {
    throw new GatewayError('invalid_method_override', `Send \`${QUERY}\` at most once.`);
  }
  const query = fromQuery?.trim() ?? '';
  if (fromHeader && query && fromHeader.toUpperCase() !== query.toUpperCase()) {
    throw new GatewayError('invalid_method_override', `\`${HEADER}\` and \`${QUERY}\` name different methods.`);
  }
  const method = fromHeader || query;
  return method ? method.toUpperCase() : undefined;
}

/**
 * @example
 * app.use(methodOverride({ allowedMethods: () => ['GET'] }));
 */
export function methodOverride(options: MethodOverrideOptions): Koa.Middleware {
  return async function methodOverrideMiddleware(ctx, next) {
    const method = requestedOverride(ctx);
    if (method === undefined) {
      return next();
    }
    if (ctx.method !== 'POST') {
      throw new GatewayError('invalid_method_override', 'Only a POST request may override its method.');
    }
    const allowed = [...new Set([...options.allowedMethods()].map((name) => name.toUpperCase()))].filter(
      (name) => name !== 'POST' && name !== 'HEAD' && name !== 'OPTIONS',
    );
    if (method !== 'POST' && !allowed.includes(method)) {
      // The method name is attacker-chosen: describe the rule, don't echo it.
      throw new GatewayError(
        'invalid_method_override',
        `A POST may only be overridden to ${allowed.length > 0 ? allowed.join(', ') : 'no other method'}.`,
      );
    }
    ctx.method = method;
    return next();
  };
}

/** Every method some route of these routers answers (for `allowedMethods`). */
export function routerMethods(routers: Array<{ stack: Array<{ methods: string[] }> }>): Set<string> {
  const methods = new Set<string>();
  for (const router of routers) for (const layer of router.stack) for (const method of layer.methods) methods.add(method);
  return methods;
}
