import type Koa from 'koa';

/**
 * CORS with an origin allow-list. Origins listed by name get their origin echoed back with
 * `Access-Control-Allow-Credentials: true`; a `*` entry lets every other origin in without
 * credentials (the wildcard is never combined with credentials, which browsers reject anyway and
 * which would hand any site the user's cookies). No list means no CORS headers: same origin only.
 */
export interface CorsOptions {
  /** Exact origins (`https://app.example.com`) and/or `*`. */
  origins: string[];
  /** How long browsers may cache a preflight answer (`Access-Control-Max-Age`). */
  maxAgeSeconds: number;
  /** Methods announced in preflight answers. */
  allowedMethods: () => Iterable<string>;
}

/** Request headers the API reads; everything else a preflight asks for is refused. */
const ALLOWED_REQUEST_HEADERS = ['Authorization', 'Content-Type', 'X-HTTP-Method-Override', 'X-Request-Id'];
/** Response headers clients need to read (the poll limit, back-off hints, correlation). */
const EXPOSED_HEADERS = ['X-Poll-Wait-Max', 'Retry-After', 'X-Request-Id'];

type OriginGrant = { allowOrigin: string; credentials: boolean } | undefined;

/**
 * @example
 * app.use(corsAllowList({ origins: ['https://app.example.com'], maxAgeSeconds: 600, allowedMethods: () => ['GET', 'POST'] }));
 */
export function corsAllowList(options: CorsOptions): Koa.Middleware {
  const listed = new Set(options.origins.filter((origin) => origin !== '*'));
  const wildcard = options.origins.includes('*');
  const enabled = listed.size > 0 || wildcard;

  function grantFor(origin: string): OriginGrant {
    if (listed.has(origin)) return { allowOrigin: origin, credentials: true };
    if (wildcard) return { allowOrigin: '*', credentials: false };
    return undefined;
  }

  return async function corsAllowListMiddleware(ctx, next) {
    if (!enabled) {
      return next();
    }
    // Answers differ per Origin, so shared caches must key on it (even when no Origin was sent).
    if (listed.size > 0) ctx.vary('Origin');
    const origin = ctx.get('Origin');
    const grant = origin ? grantFor(origin) : undefined;
    const isPreflight = ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method') !== '';

    if (isPreflight) {
      ctx.vary('Access-Control-Request-Method');
      ctx.vary('Access-Control-Request-Headers');
      // A refused preflight gets no CORS headers: the browser then blocks the real request.
      ctx.status = 204;
      if (!grant) return;
      ctx.set('Access-Control-Allow-Origin', grant.allowOrigin);
      if (grant.credentials) ctx.set('Access-Control-Allow-Credentials', 'true');
      const methods = [...new Set([...options.allowedMethods()].map((method) => method.toUpperCase()))].filter((method) => method !== 'OPTIONS');
      ctx.set('Access-Control-Allow-Methods', methods.join(', '));
      ctx.set('Access-Control-Allow-Headers', ALLOWED_REQUEST_HEADERS.join(', '));
      ctx.set('Access-Control-Max-Age', String(options.maxAgeSeconds));
      return;
    }

    if (grant) {
      ctx.set('Access-Control-Allow-Origin', grant.allowOrigin);
      if (grant.credentials) ctx.set('Access-Control-Allow-Credentials', 'true');
      ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS.join(', '));
    }
    // Returned, not awaited: a held poll then keeps no suspended frame of this middleware.
    return next();
  };
}

